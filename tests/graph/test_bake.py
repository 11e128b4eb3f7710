"""Baking removed units into a plain model: no mask inputs, same outputs as the instrumented model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnxshap import instrument
from onnxshap.errors import ModelError
from onnxshap.graph.bake import bake_removed
from onnxshap.runtime.verify import random_inputs
from tests import builders as B

MODELS = Path(__file__).resolve().parents[2] / "models"


def _plain_session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _check(inst, feeds, keep, expect_folded=None):
    model, summary = bake_removed(inst.source, inst.units, keep)
    onnx.checker.check_model(model)
    assert not [i.name for i in model.graph.input if i.name.startswith("onnxshap_mask_")]
    session = _plain_session(model)
    names = [o.name for o in session.get_outputs()]
    baked = dict(zip(names, session.run(names, feeds), strict=True))
    masked = inst.evaluate(keep[None], feeds)
    for name in names:
        np.testing.assert_allclose(baked[name], masked[name][0], rtol=1e-5, atol=1e-6)
    if expect_folded is not None:
        assert summary["folded"] == expect_folded
    return summary


@pytest.mark.parametrize(
    ("file", "data"),
    [
        ("digits_cnn_torch.onnx", "digits_test.npz"),
        ("digits_resnet_torch.onnx", "digits_test.npz"),
        ("digits_cnn_keras.onnx", "digits_test_nhwc.npz"),
    ],
)
def test_baked_fixtures_match_instrumented(file, data):
    inst = instrument(MODELS / file, units="conv,dense", optimize=False)
    with np.load(MODELS / data) as npz:
        x = npz["x"][:50]
    keep = np.random.default_rng(0).random(inst.n_units) > 0.3
    summary = _check(inst, {"input": x}, keep)
    assert summary["folded"]  # plain Conv(+BN)->Relu chains are folded into the weights


def test_fold_kinds_on_hand_built(tmp_path):
    inst = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "r.onnx"), optimize=False)
    feeds = random_inputs(inst.evaluator.session, batch=2, skip={lay.mask_input for lay in inst.units.layers})
    keep = np.ones(inst.n_units, bool)
    keep[[1, 5, 9]] = False
    _check(inst, feeds, keep, expect_folded=["conv1", "conv2", "conv3"])
    # Sigmoid(0) != 0: that layer keeps a constant multiply, the others need nothing.
    sig = instrument(B.save(B.conv_variants(2), tmp_path / "s.onnx"), optimize=False)
    keep = np.array([True, False, True])
    summary = _check(sig, {"x": np.random.default_rng(0).random((2, 2, 5, 5), dtype=np.float32)}, keep)
    assert summary == {"folded": [], "constant_mul": ["conv2d"]}


def test_nothing_removed_gives_original_graph(tmp_path):
    path = B.save(B.swish_and_dense(), tmp_path / "m.onnx")
    inst = instrument(path, units="conv,dense")
    model, summary = bake_removed(inst.source, inst.units, np.ones(inst.n_units, bool))
    assert summary == {"folded": [], "constant_mul": []}
    assert [n.op_type for n in model.graph.node] == [n.op_type for n in onnx.load(str(path)).graph.node]


def test_wrong_table_is_refused(tmp_path):
    a = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "a.onnx"))
    b = instrument(B.save(B.swish_and_dense(), tmp_path / "b.onnx"))
    with pytest.raises(ModelError, match="do not match"):
        bake_removed(
            b.source,
            a.units.__class__(layers=a.units.layers[:1], placement="after-chain", kinds=("conv",)),
            np.ones(4, bool),
        )
