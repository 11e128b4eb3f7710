"""Which layers become units, how many channels, where the mask sits — on hand-built models."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from onnxshap import instrument
from onnxshap.errors import ModelError
from onnxshap.graph import UnitTable, load_model
from onnxshap.graph.surgery import instrument_model
from tests import builders as B


def _layers(model, tmp_path, **kw):
    path = B.save(model, tmp_path / "m.onnx")
    _, table = instrument_model(load_model(path), **kw)
    return table


def test_bn_relu_chain_and_residual(tmp_path):
    table = _layers(B.conv_bn_relu_residual(), tmp_path)
    got = {layer.layer: (layer.channels, layer.chain) for layer in table.layers}
    assert got == {
        "conv1": (4, ("BatchNormalization", "Relu")),
        # The residual Add mixes two units' outputs: the chain must stop before it.
        "conv2": (4, ("BatchNormalization",)),
        "conv3": (3, ()),
    }
    assert table.n_units == 11
    assert table.unit_ids()[:2] == ["conv1:0", "conv1:1"]
    assert table.index_of("conv3:2") == 10


def test_after_conv_placement_masks_raw_output(tmp_path):
    table = _layers(B.conv_bn_relu_residual(), tmp_path, placement="after-conv")
    assert all(layer.chain == () for layer in table.layers)
    assert [layer.masked_tensor for layer in table.layers] == ["c1", "c2", "feat"]


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("transpose", [False, True])
def test_conv_dims_and_transpose(tmp_path, dim, transpose):
    table = _layers(B.conv_variants(dim, transpose), tmp_path)
    (layer,) = table.layers
    assert layer.op == ("ConvTranspose" if transpose else "Conv")
    assert layer.channels == 3
    assert layer.mask_shape(5) == (5, 3, *([1] * dim))


def test_fp16_masks_are_fp16(tmp_path):
    table = _layers(B.conv_variants(2, False, np.float16), tmp_path)
    assert table.layers[0].dtype == "float16"


def test_weights_through_constant_identity_constantofshape(tmp_path):
    table = _layers(B.weights_via_producers(), tmp_path)
    assert [(layer.layer, layer.channels) for layer in table.layers] == [
        ("conv_const", 3),
        ("conv_identity", 3),
        ("conv_cos", 5),
    ]


def test_unknown_channels_reported_not_guessed(tmp_path):
    table = _layers(B.weight_from_input(), tmp_path)
    assert [layer.layer for layer in table.layers] == ["conv_static"]
    (skip,) = table.skipped
    assert skip.layer == "conv_dynamic" and "channel count unknown" in skip.reason


def test_conv_inside_if_branches(tmp_path):
    table = _layers(B.conv_in_if(), tmp_path)
    assert {layer.graph for layer in table.layers} == {"branch/then_branch", "branch/else_branch"}
    assert all(layer.batch_aligned for layer in table.layers)


def test_swish_pattern_and_dense_units(tmp_path):
    conv_only = _layers(B.swish_and_dense(), tmp_path)
    assert [(layer.layer, layer.chain) for layer in conv_only.layers] == [("conv", ("Sigmoid", "Mul"))]
    both = _layers(B.swish_and_dense(), tmp_path, units="conv,dense")
    dense = [
        (layer.layer, layer.kind, layer.channels, layer.chain, layer.mask_shape())
        for layer in both.layers[1:]
    ]
    assert dense == [("dense1", "dense", 6, ("Add", "Relu"), (1, 6)), ("head", "dense", 4, (), (1, 4))]


def test_quantized_models(tmp_path):
    qdq = _layers(B.quantized_qdq(), tmp_path)
    assert qdq.layers[0].chain == ("QuantizeLinear", "DequantizeLinear")  # mask on the float after DQ
    integer = _layers(B.conv_integer(), tmp_path)
    assert integer.layers[0].chain == ("Cast", "Mul") and integer.layers[0].dtype == "float32"
    first_float = _layers(B.conv_integer(), tmp_path, placement="after-conv")
    assert first_float.layers[0].chain == ("Cast",)  # the int32 output itself cannot be masked
    with pytest.raises(ModelError, match="quantized tensor cannot be masked"):
        _layers(B.qlinear_conv_only(), tmp_path)


def test_graph_outputs_keep_names_and_masks_are_inputs(tmp_path):
    path = B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx")
    inst = instrument(path)
    graph = inst.model.graph
    assert [o.name for o in graph.output] == ["logits", "feat"]
    init_names = {i.name for i in graph.initializer}
    for layer in inst.units.layers:
        assert layer.mask_input in {i.name for i in graph.input}
        assert layer.mask_input not in init_names
    onnx.checker.check_model(inst.model)


def test_unit_table_json_roundtrip(tmp_path):
    path = B.save(B.swish_and_dense(), tmp_path / "m.onnx")
    inst = instrument(path, units="conv,dense")
    out = inst.save(tmp_path / "masked.onnx")
    table_file = tmp_path / "masked.units.json"
    assert out.is_file() and table_file.is_file()
    data = json.loads(table_file.read_text())
    assert data["n_units"] == 13 and data["kinds"] == ["conv", "dense"]
    assert data["model_sha256"] and len(data["model_sha256"]) == 64
    again = UnitTable.load(table_file)
    assert again.unit_ids() == inst.units.unit_ids()


def test_bad_kind_and_placement(tmp_path):
    path = B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="unknown unit kind"):
        instrument(path, units="conv,attention")
    with pytest.raises(ModelError, match="unknown placement"):
        instrument(path, placement="before")


def test_decomposed_hardswish_gelu_and_se_gate(tmp_path):
    table = _layers(B.decomposed_activations(), tmp_path)
    chains = {layer.layer: layer.chain for layer in table.layers}
    assert chains["conv_hswish"] == ("Add", "Clip", "Mul", "Div")
    assert chains["conv_gelu"] == ("Div", "Erf", "Add", "Mul", "Mul")
    assert chains["conv_se"] == (
        "HardSigmoid",
    )  # a removed gate filter closes its gate: 0, not HardSigmoid(0)


def test_exclude_layers(tmp_path):
    table = _layers(B.conv_bn_relu_residual(), tmp_path, exclude="conv[12]$")
    assert [layer.layer for layer in table.layers] == ["conv3"]
    assert [s.reason for s in table.skipped] == ["excluded by 'conv[12]$'"] * 2
    with pytest.raises(ModelError, match="not a valid regular expression"):
        _layers(B.conv_bn_relu_residual(), tmp_path, exclude="conv[")
