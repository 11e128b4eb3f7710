"""`onnxshap inspect` / `onnxshap instrument` through click's runner and a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from onnxshap_cli.main import cli
from tests import builders as B


@pytest.fixture
def model(tmp_path):
    return B.save(B.swish_and_dense(), tmp_path / "model.onnx")


def test_inspect_lists_layers(model):
    result = CliRunner().invoke(cli, ["inspect", str(model), "--units", "conv,dense"])
    assert result.exit_code == 0, result.output
    assert "conv -> Sigmoid -> Mul" in " ".join(result.output.split()).replace("Conv", "conv")
    assert "3 layers, 13 units (after-chain); 0 skipped" in result.output


def test_inspect_json(model):
    result = CliRunner().invoke(cli, ["inspect", str(model), "--json"])
    data = json.loads(result.output)
    assert data["n_units"] == 3 and data["layers"][0]["chain"] == ["Sigmoid", "Mul"]


def test_instrument_writes_model_and_table(model, tmp_path):
    out = tmp_path / "masked.onnx"
    result = CliRunner().invoke(cli, ["instrument", str(model), "-o", str(out), "--placement", "after-conv"])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "masked.units.json").read_text())
    assert table["placement"] == "after-conv" and table["layers"][0]["chain"] == []


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onnxshap_cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_subprocess_errors_are_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    out = tmp_path / "o.onnx"
    for args in (
        ["inspect", str(tmp_path / "missing.onnx")],
        ["instrument", str(bad), "-o", str(out)],
        ["instrument", str(B.save(B.no_units(), tmp_path / "nu.onnx")), "-o", str(out)],
    ):
        proc = _run(*args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("onnxshap: error: ")
        assert "Traceback" not in proc.stderr
        assert not out.exists() and not (tmp_path / "o.units.json").exists()


def test_subprocess_instrument_ok(model, tmp_path):
    proc = _run("instrument", str(model), "-o", str(tmp_path / "m2.onnx"))
    assert proc.returncode == 0, proc.stderr
    assert "3 units in 1 layers" in proc.stdout


def test_refuses_to_overwrite_input(model):
    result = CliRunner().invoke(cli, ["instrument", str(model), "-o", str(model)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output


def test_help_everywhere():
    for args in ([], ["inspect"], ["instrument"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_verify_passes_on_fixture_and_reports_shape_errors():
    from pathlib import Path

    models = Path(__file__).resolve().parents[2] / "models"
    ok = CliRunner().invoke(
        cli, ["verify", str(models / "digits_cnn_keras.onnx"), "--data", str(models / "digits_test_nhwc.npz")]
    )
    assert ok.exit_code == 0, ok.output
    assert "max |diff| 0 " in ok.output and "changes the output" in ok.output
    wrong = CliRunner().invoke(
        cli, ["verify", str(models / "digits_cnn_keras.onnx"), "--data", str(models / "digits_test.npz")]
    )
    assert wrong.exit_code == 2
    assert "expects [N, 8, 8, 1], got [N, 1, 8, 8]" in wrong.output and "NHWC" in wrong.output


def test_unknown_provider_exit_2(model):
    proc = _run("verify", str(model), "--provider", "tpu")
    assert proc.returncode == 2 and "unknown provider 'tpu'" in proc.stderr and "Traceback" not in proc.stderr
