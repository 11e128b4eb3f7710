"""`onnxshap run`'s console summary for vector games (per-class, mean-output, output-map): no crash after the
run, the shape of the modes stated and the figures given as means over elements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxshap_cli.main import cli

CNN = Path(__file__).resolve().parents[2] / "models" / "digits_cnn_torch.onnx"


@pytest.mark.parametrize(
    ("metric", "shape"), [("per-class", [10]), ("mean-output", [10]), ("output-map:5", [5])]
)
def test_vector_game_run_prints_its_summary(tmp_path, metric, shape):
    out = tmp_path / "run"
    args = ["run", str(CNN), "--metric", metric, "--out", str(out), "--estimator", "truncated"]
    result = CliRunner().invoke(cli, [*args, "--max-evals", "200", "--no-baselines", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert list(np.shape(run["v_all"])) == shape and run["status"] == "finished"
    assert f"each unit's Shapley mode has shape {shape}" in result.output
    mean = float(np.mean(run["v_all"]))
    assert f"v(all) = {mean:.4g} (mean; min {np.min(run['v_all']):.4g}" in result.output
    assert "top units (mean of the mode" in result.output and f"run folder: {out}" in result.output
    assert np.load(out / "modes.npy").shape == (80, *shape)


def test_scalar_game_summary_is_unchanged(tmp_path):
    out = tmp_path / "run"
    args = ["run", str(CNN), "--out", str(out), "--estimator", "truncated", "--max-evals", "200"]
    result = CliRunner().invoke(cli, [*args, "--no-baselines", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert f"v(all) = {run['v_all']:.4g}, v(empty) = {run['v_empty']:.4g}" in result.output
    assert "vector game" not in result.output and "top units (value [CI]):" in result.output
