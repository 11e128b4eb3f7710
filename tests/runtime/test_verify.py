"""`onnxshap verify` never passes on outputs it cannot compare: NaN or inf from the original model is exit 2
(one line naming the output and item), NaN where the original has a number is an infinite difference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxshap import instrument
from onnxshap.errors import DataError
from onnxshap.runtime.verify import _max_diff, check_invariant, random_inputs

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"


def _verify(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "onnxshap_cli.main", "verify", *args, "--provider", "cpu"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _log_of_negative(path: Path) -> Path:
    """Conv -> Relu -> Sub 5 -> Log: NaN for almost every input in [0, 1)."""
    w = np.full((3, 2, 1, 1), 0.1, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Sub", ["r", "five"], ["s"], name="sub"),
        helper.make_node("Log", ["s"], ["y"], name="log"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(5, np.float32), "five")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_nan_data_is_exit_2_with_one_line(tmp_path):
    with np.load(MODELS / "digits_test.npz") as npz:
        x = npz["x"][:8].copy()
    x[0, 0, 3, 3] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=x)
    proc = _verify(str(CNN), "--data", str(data))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "the original model outputs NaN in 'logits' for item 0 of nan.npz" in proc.stderr
    assert "max |diff|" not in proc.stdout
    assert _verify(str(CNN), "--data", str(MODELS / "digits_test.npz")).returncode == 0


def test_model_that_outputs_nan_on_random_inputs_is_exit_2(tmp_path):
    model = _log_of_negative(tmp_path / "log.onnx")
    proc = _verify(str(model))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "outputs NaN in 'y' for item 0 of random inputs (give real ones with --data)" in proc.stderr
    inst = instrument(model, optimize=False, provider="cpu")
    feeds = random_inputs(inst.evaluator.session, batch=2, skip={la.mask_input for la in inst.units.layers})
    with pytest.raises(DataError, match="outputs NaN in 'y'"):
        check_invariant(inst, feeds)


def test_nan_or_inf_against_a_number_is_an_infinite_difference():
    ref = np.array([[1.0, 2.0]], np.float32)
    assert _max_diff(np.array([[1.0, np.nan]], np.float32), ref) == np.inf
    assert _max_diff(np.array([[np.inf, 2.0]], np.float32), ref) == np.inf
    assert _max_diff(np.array([[1.0, 2.5]], np.float32), ref) == 0.5
    both = np.array([[np.nan, np.inf]], np.float32)
    assert _max_diff(both, both.copy()) == 0.0
