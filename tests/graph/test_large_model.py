"""A model over 2 GB (external data) instruments, saves and runs without ever loading its weights inline."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxshap import instrument, load_instrumented

BIG_FLOATS = 560_000_000  # 2.24 GB of float32


def _external(name: str, shape: list[int], location: str, offset: int, length: int) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


@pytest.mark.slow
def test_model_over_2gb(tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    weight = (np.arange(3 * 2 * 3 * 3, dtype=np.float32).reshape(3, 2, 3, 3) % 5) / 10
    data = src / "weights.bin"
    with open(data, "wb") as fh:
        fh.write(weight.tobytes())
        fh.truncate(weight.nbytes + BIG_FLOATS * 4)  # sparse file: cheap to make, 2.24 GB to read
    inits = [
        _external("w", [3, 2, 3, 3], "weights.bin", 0, weight.nbytes),
        _external("table", [BIG_FLOATS], "weights.bin", weight.nbytes, BIG_FLOATS * 4),
        numpy_helper.from_array(np.array([0, 7], np.int64), "idx"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
        helper.make_node("Gather", ["table", "idx"], ["g"], name="gather"),
        helper.make_node("ReduceSum", ["g"], ["gs"], name="gsum", keepdims=0),
        helper.make_node("Add", ["y", "gs"], ["out"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = src / "big.onnx"
    onnx.save(model, str(path))
    assert path.stat().st_size < 10_000 and data.stat().st_size > 2**31

    inst = instrument(path, optimize=False)
    assert inst.n_units == 3
    out_path = inst.save(tmp_path / "out" / "masked.onnx")
    assert out_path.stat().st_size < 10_000
    assert (tmp_path / "out" / "masked.onnx.data").stat().st_size == data.stat().st_size
    reopened = load_instrumented(out_path, optimize=False)
    x = np.ones((1, 2, 4, 4), np.float32)
    coalitions = np.array([[True, True, True], [True, False, True]])
    got = reopened.evaluate(coalitions, x)["out"]
    ref = inst.run_original(x)["out"]
    np.testing.assert_array_equal(got[0], ref)
    assert np.all(got[1][:, 1] == 0) and np.any(ref[:, 1] != 0)
