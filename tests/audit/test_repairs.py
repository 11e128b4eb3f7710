"""The paper's repairs through the CLI: `prune --negative` on a fairness and on a robustness run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from onnxshap_cli.main import cli

MODELS = Path(__file__).resolve().parents[2] / "models"
pytestmark = pytest.mark.slow


def _accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return float((session.run(None, {"input": x})[0].argmax(1) == y).mean())


def _run_and_prune(tmp_path: Path, model: Path, metric: str, extra: list[str], max_units: int) -> str:
    out = tmp_path / "run"
    run = CliRunner().invoke(
        cli,
        [
            "run",
            str(model),
            "--metric",
            metric,
            "--estimator",
            "truncated",
            "--max-evals",
            "3000",
            "--out",
            str(out),
            "--no-baselines",
            "--no-progress",
            *extra,
        ],
    )
    assert run.exit_code == 0, run.output
    pruned = CliRunner().invoke(
        cli,
        [
            "prune",
            str(model),
            "--run",
            str(out),
            "--negative",
            "--max",
            str(max_units),
            "-o",
            str(tmp_path / "repaired.onnx"),
        ],
    )
    assert pruned.exit_code == 0, pruned.output
    return pruned.output


def _before_after(output: str) -> tuple[float, float]:
    line = next(li for li in output.splitlines() if "original" in li and "repaired" in li)
    words = line.replace("->", " ").split()
    return float(words[words.index("original") + 1]), float(words[words.index("repaired") + 1])


def test_negative_repair_closes_planted_bias(tmp_path):
    model = MODELS / "digits_bias_torch.onnx"
    output = _run_and_prune(tmp_path, model, "fairness:1", ["--data", str(MODELS / "digits_bias.npz")], 8)
    before, after = _before_after(output)  # group A's accuracy on the held-out split
    assert after > before + 0.1
    with np.load(MODELS / "digits_bias.npz") as npz:
        x, y, group = npz["x"], npz["y"], npz["group"]
    gap = {
        m: _accuracy(m, x[group == 0], y[group == 0]) - _accuracy(m, x[group == 1], y[group == 1])
        for m in (model, tmp_path / "repaired.onnx")
    }
    assert gap[tmp_path / "repaired.onnx"] < gap[model] / 2
    assert _accuracy(tmp_path / "repaired.onnx", x, y) >= _accuracy(model, x, y)


def test_negative_repair_raises_robustness(tmp_path):
    model = MODELS / "digits_cnn_torch.onnx"
    output = _run_and_prune(tmp_path, model, "robustness", [], 3)
    before, after = _before_after(output)  # accuracy on held-out adversarial examples
    assert after > before + 0.2
    with np.load(MODELS / "digits_test.npz") as npz:
        x, y = npz["x"], npz["y"]
    assert _accuracy(tmp_path / "repaired.onnx", x, y) > _accuracy(model, x, y) - 0.05
