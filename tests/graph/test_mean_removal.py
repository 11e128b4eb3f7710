"""--removal mean: a removed unit outputs its mean activation; the fast path and prune keep the semantics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from onnxshap import instrument
from onnxshap.graph.bake import bake_removed
from onnxshap.runtime.activations import activation_model, channel_means

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.load(MODELS / "digits_test.npz")["x"][:64]


def _masked_tensors(inst, keep: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    model, layers = activation_model(inst)
    session = inst.session_for(model).session
    feeds = {inst.input_names[0]: x, **inst.evaluator.masks_for(keep[None])}
    outs = session.run([la.masked_tensor for la in layers], feeds)
    return {la.layer: o for la, o in zip(layers, outs, strict=True)}


def test_removed_units_output_their_mean_and_all_ones_is_the_original(x) -> None:
    inst = instrument(CNN, provider="cpu", optimize=False)
    means = channel_means(inst, x)
    acts = _masked_tensors(inst, np.ones(80, bool), x)
    np.testing.assert_allclose(means[:16], acts["/conv1/Conv"].mean(axis=(0, 2, 3)), rtol=1e-5)
    mean_inst = inst.with_means(means)
    assert mean_inst.units.removal == "mean" and inst.units.removal == "zero"
    ones = np.ones((1, 80), bool)
    # bit for bit: x * 1 + mean * 0
    np.testing.assert_array_equal(mean_inst.evaluate(ones, x)["logits"][0], inst.run_original(x)["logits"])
    keep = np.ones(80, bool)
    keep[[3, 20, 70]] = False
    acts = _masked_tensors(mean_inst, keep, x)
    conv1, conv2, conv3 = acts["/conv1/Conv"], acts["/conv2/Conv"], acts["/conv3/Conv"]
    assert np.all(conv1[:, 3] == np.float32(means[3])) and np.all(conv2[:, 4] == np.float32(means[20]))
    assert np.all(conv3[:, 22] == np.float32(means[70])) and not np.all(conv1[:, 2] == np.float32(means[2]))
    zero = inst.evaluate(keep[None], x)["logits"]
    assert not np.allclose(mean_inst.evaluate(keep[None], x)["logits"], zero)


def test_fast_path_cuts_and_agrees(x) -> None:
    inst = instrument(CNN, provider="cpu")
    mean_inst = inst.with_means(channel_means(inst, x))
    rng = np.random.default_rng(0)
    coalitions = rng.random((6, 80)) < 0.6
    path = mean_inst.fast_path("logits")
    assert path.describe().cut
    fast = path.bind({mean_inst.input_names[0]: x}).evaluate(coalitions)
    plain = mean_inst.evaluate(coalitions, x)["logits"]
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("placement", ["after-chain", "after-conv"])
def test_bake_keeps_the_mean(x, tmp_path, placement) -> None:
    inst = instrument(CNN, provider="cpu", placement=placement)
    means = channel_means(inst, x)
    mean_inst = inst.with_means(means)
    keep = np.ones(80, bool)
    keep[[0, 5, 17, 60, 61]] = False
    baked, summary = bake_removed(inst.source, inst.units, keep, means=means)
    if placement == "after-conv":
        assert summary["folded"] == ["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"]
    else:
        assert summary["constant_mul"] == ["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"]
    path = tmp_path / "baked.onnx"
    path.write_bytes(baked.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    got = session.run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(got, mean_inst.evaluate(keep[None], x)["logits"][0], rtol=1e-4, atol=1e-4)
    with pytest.raises(Exception, match="mean removal"):
        bake_removed(inst.source, mean_inst.units, keep)


def test_run_and_prune_with_mean_removal(tmp_path) -> None:
    from onnxshap.audit.repair import prune
    from onnxshap.audit.runfolder import RunFolder
    from onnxshap.audit.runner import config_from_run, replay_games
    from onnxshap_cli.main import cli

    out = tmp_path / "mean"
    result = CliRunner().invoke(
        cli,
        [
            "run", str(CNN), "--removal", "mean", "--estimator", "permutation", "--max-evals", "200",
            "--out", str(out), "--no-progress", "--no-baselines",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["removal"] == "mean" and "mean activation" in run["removal_description"]
    folder = RunFolder(out)
    means = folder.load_means()
    assert means.shape == (80,) and json.loads((out / "units.json").read_text())["removal"] == "mean"
    inst, _, check = replay_games(config_from_run(run), folder, provider="cpu")
    assert inst.units.removal == "mean"
    repair = prune(CNN, out, [1, 2, 40], tmp_path / "p.onnx")
    keep = np.ones(80, bool)
    keep[[1, 2, 40]] = False
    assert repair.repaired_value == pytest.approx(float(check(keep[None])[0]), abs=1e-9)
    report = CliRunner().invoke(cli, ["report", str(out), "--no-pictures"])
    assert (
        report.exit_code == 0
        and "mean activation over the valuation split" in (out / "report.html").read_text()
    )
