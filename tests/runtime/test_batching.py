"""Models with a fixed batch size are evaluated in runs of that size, like a model with a free batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from onnxshap import instrument
from onnxshap.errors import DataError
from onnxshap.games.base import Game
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.runtime.activation_maps import activation_maps
from onnxshap.runtime.activations import mean_activations
from onnxshap.runtime.batching import ItemChunks, plan_chunks
from onnxshap.runtime.evaluator import prepare_inputs

MODELS = Path(__file__).resolve().parents[2] / "models"


def fixed_batch_copy(src: Path, dst: Path, batch: int) -> Path:
    """The model with its input's (and outputs') batch dimension fixed to `batch` (onnx tools only)."""
    model = onnx.load(str(src))
    for info in [*model.graph.input, *model.graph.output]:
        dim = info.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(MODELS / "digits_test.npz") as f:
        return f["x"][:n], f["y"][:n]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(free-batch model, batch-1 model, batch-4 model) of the digits CNN."""
    folder = tmp_path_factory.mktemp("fixed")
    free = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    one = instrument(
        fixed_batch_copy(MODELS / "digits_cnn_torch.onnx", folder / "b1.onnx", 1), provider="cpu"
    )
    four = instrument(
        fixed_batch_copy(MODELS / "digits_cnn_torch.onnx", folder / "b4.onnx", 4), provider="cpu"
    )
    return free, one, four


def test_a_fixed_batch_model_evaluates_like_a_free_one(pair):
    free, *fixed = pair
    x, _ = _digits(23)  # not a multiple of 4: the last run of the batch-4 model is padded
    out = free.evaluator.output_names[0]
    coal = np.random.default_rng(0).random((5, free.n_units)) < 0.6
    want = free.evaluate(coal, x)[out]
    for inst in fixed:
        assert inst.evaluator.session.get_inputs()[0].shape[0] in (1, 4)
        np.testing.assert_array_equal(inst.evaluate(coal, x)[out], want)
        np.testing.assert_array_equal(inst.run_original(x)[out], free.run_original(x)[out])
        for reduction in (None, "argmax"):
            got = inst.fast_path(out, reduction).bind(inst.bind(x)).evaluate(coal)
            np.testing.assert_array_equal(
                got, free.fast_path(out, reduction).bind(free.bind(x)).evaluate(coal)
            )
        with pytest.raises(DataError, match="batch is fixed at"):
            inst.fast_path(out, "mean-items").bind(inst.bind(x))
        with pytest.raises(DataError, match="stacking coalitions is not possible: input 'input' has a fixed"):
            inst.evaluate(coal, x, stack=2)
        np.testing.assert_array_equal(mean_activations(inst, x), mean_activations(free, x))
        units = [0, 20, 79]
        maps, free_maps = activation_maps(inst, x, units), activation_maps(free, x, units)
        assert maps.keys() == free_maps.keys() and all(np.array_equal(maps[u], free_maps[u]) for u in maps)


@pytest.mark.parametrize("metric", ["accuracy", "mean-output", "loss"])
def test_fixed_batch_games_and_leave_one_out_equal_the_free_model(pair, metric):
    free, one, four = pair
    x, y = _digits(30)
    base = OnnxGame(free, x, y, metric=metric, fast=False)
    want_loo = base.leave_one_out()
    coal = np.random.default_rng(1).random((6, free.n_units)) < 0.5
    for inst in (one, four):
        for fast in (True, False):
            game = OnnxGame(inst, x, y, metric=metric, fast=fast)
            assert game.chunks is not None
            np.testing.assert_array_equal(game(coal), base(coal))
            np.testing.assert_array_equal(game.leave_one_out(), want_loo)
            np.testing.assert_array_equal(Game.leave_one_out(game, [0, 50]), want_loo[[0, 50]])


def test_chunk_plans():
    metas = [_Meta("x", [2, 3]), _Meta("state", [2, 5]), _Meta("aux", ["n", 4])]
    feeds = {"x": np.zeros((5, 3)), "state": np.zeros((2, 5)), "aux": np.zeros((5, 4))}
    plan = plan_chunks(metas, feeds)
    assert plan == ItemChunks(size=2, n_items=5, split=("x", "aux"))
    runs = list(plan.chunks(feeds))
    assert [v for _, v in runs] == [2, 2, 1] and all(r["state"].shape == (2, 5) for r, _ in runs)
    assert all(r["x"].shape == (2, 3) for r, _ in runs)  # the last run padded with the last item
    merged = plan.merge([np.arange(2), np.arange(2, 4), np.array([4, 4])])
    np.testing.assert_array_equal(merged, np.arange(5))
    with pytest.raises(DataError, match="no batch axis"):
        plan.merge([np.zeros(()), np.zeros(()), np.zeros(())])
    assert plan_chunks(metas, {**feeds, "x": np.zeros((2, 3))}) is None  # one run takes them
    bad = [_Meta("a", [1, 3]), _Meta("b", [2, 3])]
    with pytest.raises(DataError, match="fixed batch sizes do not agree"):
        plan_chunks(bad, {"a": np.zeros((6, 3)), "b": np.zeros((6, 3))})


def test_other_dims_are_still_checked(pair):
    _, one, _ = pair
    session = one.evaluator.session
    masks = {la.mask_input for la in one.units.layers}
    with pytest.raises(DataError, match=r"expects shape \[1, 1, 8, 8\], got \[5, 1, 8, 9\]"):
        prepare_inputs(session, np.zeros((5, 1, 8, 9), np.float32), masks, fixed_batch=True)
    with pytest.raises(DataError, match=r"expects shape \[1, 1, 8, 8\], got \[5, 1, 8, 8\]"):
        prepare_inputs(session, np.zeros((5, 1, 8, 8), np.float32), masks)


class _Meta:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


@pytest.mark.slow
def test_onnxshap_run_on_a_batch_1_model_equals_the_free_model(tmp_path):
    from onnxshap_cli.main import cli

    fixed = fixed_batch_copy(MODELS / "digits_cnn_torch.onnx", tmp_path / "digits_b1.onnx", 1)
    data = MODELS / "digits_test.npz"
    runs = {}
    for name, model in (("free", MODELS / "digits_cnn_torch.onnx"), ("fixed", fixed)):
        out = tmp_path / name
        args = ["run", str(model), "--data", str(data), "--out", str(out), "--estimator", "loo"]
        res = CliRunner().invoke(cli, [*args, "--top-k", "5", "--seed", "1", "--no-progress"])
        assert res.exit_code == 0, res.output
        runs[name] = out
    with np.load(runs["free"] / "result.npz") as a, np.load(runs["fixed"] / "result.npz") as b:
        np.testing.assert_array_equal(a["values"], b["values"])
    curves = [json.loads((runs[n] / "curves.json").read_text()) for n in ("free", "fixed")]
    assert curves[0]["curves"] == curves[1]["curves"] and curves[0]["rankings"] == curves[1]["rankings"]
