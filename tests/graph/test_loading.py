"""Bad model files are refused with one clear line; external data stays external and inside its folder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxshap import instrument, load_instrumented
from onnxshap.errors import ModelError
from onnxshap.graph import load_model
from tests import builders as B


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.onnx")


def test_non_onnx_and_truncated(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(ModelError, match="not"):
        load_model(text)
    good = B.save(B.conv_bn_relu_residual(), tmp_path / "good.onnx")
    data = good.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"corrupt or truncated|not an ONNX model"):
        load_model(cut)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError):
        load_model(empty)


def test_old_opset_and_no_units(tmp_path):
    with pytest.raises(ModelError, match="opset 6"):
        load_model(B.save(B.old_opset(), tmp_path / "old.onnx"))
    with pytest.raises(ModelError, match="no conv units"):
        instrument(B.save(B.no_units(), tmp_path / "none.onnx"))


def test_external_data_roundtrip(tmp_path):
    src = B.save(B.conv_bn_relu_residual(), tmp_path / "src" / "model.onnx", external=True)
    assert (tmp_path / "src" / "model.data").is_file()
    inst = instrument(src, optimize=False)
    assert inst.source.has_external_data
    x = np.random.default_rng(1).random((2, 2, 6, 6), dtype=np.float32)
    ones = np.ones((1, inst.n_units), bool)
    assert np.array_equal(inst.evaluate(ones, x)["logits"][0], inst.run_original(x)["logits"])
    # Saved elsewhere: the data stays external (copied next to it under its own name), the model file stays small.
    out = inst.save(tmp_path / "out" / "masked.onnx")
    assert (tmp_path / "out" / "masked.onnx.data").is_file()
    saved = onnx.load(str(out), load_external_data=False)
    assert all(
        t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data for t in saved.graph.initializer
    )
    reloaded = load_instrumented(out, optimize=False)
    assert reloaded.source.external_files == ["masked.onnx.data"]
    assert np.array_equal(reloaded.evaluate(ones, x)["logits"][0], inst.run_original(x)["logits"])


def test_external_data_outside_folder_is_refused(tmp_path):
    model = B.conv_bn_relu_residual()
    B.save(model, tmp_path / "a" / "model.onnx", external=True)
    evil = onnx.load(str(tmp_path / "a" / "model.onnx"), load_external_data=False)
    for tensor in evil.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secrets.bin"
    (tmp_path / "secrets.bin").write_bytes(b"\0" * 4096)
    evil_path = tmp_path / "a" / "evil.onnx"
    onnx.save(evil, str(evil_path))
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(evil_path)


def test_missing_external_data(tmp_path):
    path = B.save(B.conv_bn_relu_residual(), tmp_path / "model.onnx", external=True)
    (tmp_path / "model.data").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(path)
