"""Inputs of the baseline rankings: weight norms from the producers, mean activations from extra outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from onnxshap import instrument
from onnxshap.graph.weights import weight_norms
from onnxshap.runtime.activations import mean_activations
from tests import builders as B

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_weight_norms_through_every_producer(tmp_path):
    model = B.weights_via_producers()
    inst = instrument(B.save(model, tmp_path / "w.onnx"))
    norms = weight_norms(inst.source, inst.units)
    const = numpy_helper.to_array(next(n for n in model.graph.node if n.name == "const_w1").attribute[0].t)
    ident = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w2_init"))
    np.testing.assert_allclose(norms[:3], np.abs(const).reshape(3, -1).sum(1), rtol=1e-6)
    np.testing.assert_allclose(norms[3:6], np.abs(ident).reshape(3, -1).sum(1), rtol=1e-6)
    np.testing.assert_allclose(
        norms[6:], np.full(5, 0.1 * 3), rtol=1e-6
    )  # ConstantOfShape fill 0.1, 3 inputs


def test_weight_norms_dense_and_quantized(tmp_path):
    dense = B.swish_and_dense()
    inst = instrument(B.save(dense, tmp_path / "d.onnx"), units="conv,dense")
    norms = weight_norms(inst.source, inst.units)
    wd = numpy_helper.to_array(next(i for i in dense.graph.initializer if i.name == "wd"))
    wg = numpy_helper.to_array(next(i for i in dense.graph.initializer if i.name == "wg"))
    np.testing.assert_allclose(norms[3:9], np.abs(wd).sum(0), rtol=1e-6)  # MatMul [K, F]: per column
    np.testing.assert_allclose(norms[9:], np.abs(wg).sum(1), rtol=1e-6)  # Gemm transB: per row
    qdq = B.quantized_qdq()
    inst = instrument(B.save(qdq, tmp_path / "q.onnx"))
    wq = numpy_helper.to_array(next(i for i in qdq.graph.initializer if i.name == "wq")).astype(np.float64)
    np.testing.assert_allclose(
        weight_norms(inst.source, inst.units), np.abs(wq * 0.02).reshape(3, -1).sum(1), rtol=1e-5
    )


def test_mean_activation_matches_numpy_conv():
    inst = instrument(MODELS / "digits_cnn_torch.onnx")
    with np.load(MODELS / "digits_test.npz") as npz:
        x = npz["x"][:100].astype(np.float64)
    model = onnx.load(str(MODELS / "digits_cnn_torch.onnx"))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    w, b = inits[conv.input[1]], inits[conv.input[2]]
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3)
    )  # [N, 1, 8, 8, 3, 3]
    out = np.einsum("ncijkl,ockl->noij", windows, w) + b[None, :, None, None]
    expected = np.maximum(out, 0).mean(axis=(0, 2, 3))
    got = mean_activations(inst, x.astype(np.float32), batch=32)
    np.testing.assert_allclose(got[:16], expected, rtol=1e-4, atol=1e-6)
    assert np.isfinite(got).all()
