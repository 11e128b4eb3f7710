"""Labels and groups are checked against the metric and the model's output at load time, before any work:
every split, every metric that reads class ids, one line naming the item, exit 2."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxshap import instrument
from onnxshap.errors import DataError
from onnxshap.games.onnx_game import OnnxGame
from onnxshap_cli.main import cli

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"  # 10 classes
QUICK = ["--max-evals", "100", "--no-baselines", "--no-progress", "--estimator", "truncated"]


@pytest.fixture(scope="module")
def digits():
    with np.load(MODELS / "digits_test.npz") as npz:
        return npz["x"][:60], npz["y"][:60]


def _save(tmp_path, name, x, y, group=None):
    path = tmp_path / name
    arrays = {"x": x, "y": y} if group is None else {"x": x, "y": y, "group": group}
    np.savez(path, **arrays)
    return path


def _run(tmp_path, data, metric, *extra):
    out = tmp_path / "run"
    args = ["run", str(CNN), "--data", str(data), "--metric", metric, "--out", str(out), *QUICK, *extra]
    return CliRunner().invoke(cli, args), out


GROUPS = np.where(np.arange(60) % 2 == 0, 0, 1)
METRICS = ["accuracy", "loss", "logit", "class:3", "per-class", "fairness", "fairness:1", "adversarial"]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("bad", [-1, 10])
def test_out_of_range_label_is_refused_before_any_work(tmp_path, digits, metric, bad):
    x, y = digits
    y = y.copy()
    y[5] = bad  # item 5 lands in the held-out split of a 0.5 split with seed 0
    data = _save(tmp_path, "bad.npz", x, y, GROUPS)
    started = time.perf_counter()
    result, out = _run(tmp_path, data, metric)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    expected = (
        f"bad.npz: label {bad} of item 5 is not a class of this model (its output has 10 classes: 0..9)"
    )
    assert expected in result.stderr
    assert not (out / "run.json").exists() and not (out / "adversarial").exists()
    assert time.perf_counter() - started < 20  # no attack, no estimate


def test_label_checks_cover_adversarial_data(tmp_path, digits):
    x, y = digits
    bad = y.copy()
    bad[7] = 10
    adv = _save(tmp_path, "adv.npz", x, bad)
    result, out = _run(
        tmp_path, _save(tmp_path, "ok.npz", x, y), "robustness", "--adversarial-data", str(adv)
    )
    assert result.exit_code == 2 and "adv.npz: label 10 of item 7 is not a class" in result.stderr
    assert not (out / "run.json").exists()


def test_groups_are_checked_for_fairness_metrics(tmp_path, digits):
    x, y = digits
    result, _ = _run(tmp_path, _save(tmp_path, "nogroup.npz", x, y), "fairness")
    assert result.exit_code == 2 and "metric 'fairness' needs a group per item" in result.stderr
    one = _save(tmp_path, "one.npz", x, y, np.zeros(60, np.int64))
    result, _ = _run(tmp_path, one, "fairness")
    assert result.exit_code == 2 and "the fairness gap needs at least two groups" in result.stderr
    result, _ = _run(tmp_path, one, "fairness:7")
    assert result.exit_code == 2 and "fairness:7: group '7' is not in the data (groups: 0)" in result.stderr
    # A group with a single item lands in one split only: the other split cannot value its accuracy.
    rare = np.zeros(60, np.int64)
    rare[11] = 1
    result, out = _run(tmp_path, _save(tmp_path, "rare.npz", x, y, rare), "fairness:1")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "split: fairness:1: group '1' is not in the data (groups: 0)" in result.stderr
    assert not (out / "run.json").exists()


def test_held_out_game_checks_its_labels(digits):
    x, y = digits
    inst = instrument(CNN, provider="cpu")
    game = OnnxGame(inst, x[:30], y[:30], metric="loss")
    bad = y[30:].copy()
    bad[2] = 10
    with pytest.raises(DataError, match="label 10 of item 2 is not a class of this model"):
        game.with_data(x[30:], bad, None)
    groups = np.array(["a", "b"] * 15)
    gap = OnnxGame(inst, x[:30], y[:30], groups, metric="fairness")
    with pytest.raises(DataError, match=r"group '\w' \((dis)?advantaged\) is not in the data"):
        gap.with_data(x[30:], y[30:], np.array(["a"] * 30))
