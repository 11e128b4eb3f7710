"""Tiny hand-built ONNX models covering the graph shapes real exports produce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def _seeded(build):
    """Every builder draws its weights from a fresh seed: models do not depend on the order tests run."""
    import functools

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        global RNG
        RNG = np.random.default_rng(0)
        return build(*args, **kwargs)

    return wrapper


def _w(*shape: int, dtype=np.float32) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(dtype)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = min(model.ir_version, 8)
    return model


def _in(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _out(name: str, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, None)


@_seeded
def conv_bn_relu_residual() -> onnx.ModelProto:
    """Conv-BN-Relu, Conv-BN + residual Add, Relu, then a Conv whose output is also a graph output."""
    c = 4
    inits = [
        numpy_helper.from_array(_w(c, 2, 3, 3), "w1"),
        numpy_helper.from_array(_w(c, c, 3, 3), "w2"),
        numpy_helper.from_array(_w(3, c, 1, 1), "w3"),
        numpy_helper.from_array(_w(3), "b3"),
    ]
    for name in ("bn1", "bn2"):
        inits += [
            numpy_helper.from_array(np.abs(_w(c)) + 0.5, f"{name}_s"),
            numpy_helper.from_array(_w(c), f"{name}_b"),
            numpy_helper.from_array(_w(c), f"{name}_m"),
            numpy_helper.from_array(np.abs(_w(c)) + 0.5, f"{name}_v"),
        ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["b1"], name="bn1"
        ),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["b2"], name="bn2"
        ),
        helper.make_node("Add", ["b2", "r1"], ["a2"], name="add"),
        helper.make_node("Relu", ["a2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["feat"], name="conv3"),
        helper.make_node("GlobalAveragePool", ["feat"], ["pool"], name="gap"),
        helper.make_node("Flatten", ["pool"], ["logits"], name="flat"),
    ]
    return _model(nodes, [_in("x", ["N", 2, 6, 6])], [_out("logits"), _out("feat")], inits)


@_seeded
def conv_variants(dim: int = 1, transpose: bool = False, dtype=np.float32) -> onnx.ModelProto:
    """A 1-D/2-D/3-D Conv or ConvTranspose with a Sigmoid (so masking after the chain matters)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    spatial = [5] * dim
    w = _w(2, 3, *([3] * dim), dtype=dtype) if transpose else _w(3, 2, *([3] * dim), dtype=dtype)
    op = "ConvTranspose" if transpose else "Conv"
    nodes = [
        helper.make_node(op, ["x", "w"], ["y"], name=f"{op.lower()}{dim}d", pads=[1] * (2 * dim)),
        helper.make_node("Sigmoid", ["y"], ["s"], name="sig"),
        helper.make_node("Identity", ["s"], ["out"], name="id"),
    ]
    return _model(
        nodes, [_in("x", ["N", 2, *spatial], elem)], [_out("out", elem)], [numpy_helper.from_array(w, "w")]
    )


@_seeded
def weights_via_producers() -> onnx.ModelProto:
    """Conv weights from a Constant node, from Identity of an initializer, and from ConstantOfShape (opset 9)."""
    const_w = helper.make_tensor("cw", TensorProto.FLOAT, [3, 2, 1, 1], _w(3, 2, 1, 1).ravel().tolist())
    shape = helper.make_tensor("shp", TensorProto.INT64, [4], [5, 3, 1, 1])
    fill = helper.make_tensor("fill", TensorProto.FLOAT, [1], [0.1])
    nodes = [
        helper.make_node("Constant", [], ["w1"], name="const_w1", value=const_w),
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv_const"),
        helper.make_node("Identity", ["w2_init"], ["w2"], name="ident_w2"),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], name="conv_identity"),
        helper.make_node("Constant", [], ["shape3"], name="const_shape3", value=shape),
        helper.make_node("ConstantOfShape", ["shape3"], ["w3"], name="cos_w3", value=fill),
        helper.make_node("Conv", ["c2", "w3"], ["c3"], name="conv_cos"),
        helper.make_node("Relu", ["c3"], ["out"], name="relu"),
    ]
    inits = [numpy_helper.from_array(_w(3, 3, 1, 1), "w2_init")]
    return _model(nodes, [_in("x", ["N", 2, 4, 4])], [_out("out")], inits, opset=11)


@_seeded
def weight_from_input() -> onnx.ModelProto:
    """One conv with a weight fed at run time (channels unknowable) and one normal conv."""
    nodes = [
        helper.make_node("Conv", ["x", "wdyn"], ["c1"], name="conv_dynamic"),
        helper.make_node("Conv", ["c1", "w2"], ["out"], name="conv_static"),
    ]
    return _model(
        nodes,
        [_in("x", ["N", 2, 4, 4]), _in("wdyn", ["M", 2, 1, 1])],
        [_out("out")],
        [numpy_helper.from_array(_w(3, 2, 1, 1), "w2")],
    )


@_seeded
def conv_in_if() -> onnx.ModelProto:
    """A Conv1d inside both branches of an If (as silero-vad hides its convs)."""

    def branch(tag: str) -> onnx.GraphProto:
        w = numpy_helper.from_array(_w(4, 2, 3), f"w_{tag}")
        nodes = [
            helper.make_node("Conv", ["x", f"w_{tag}"], [f"c_{tag}"], name=f"conv_{tag}", pads=[1, 1]),
            helper.make_node("Relu", [f"c_{tag}"], [f"y_{tag}"], name=f"relu_{tag}"),
        ]
        return helper.make_graph(nodes, tag, [], [_out(f"y_{tag}")], [w])

    nodes = [
        helper.make_node(
            "If", ["flag"], ["y"], name="branch", then_branch=branch("then"), else_branch=branch("else")
        ),
        helper.make_node("ReduceSum", ["y"], ["out"], name="sum", keepdims=0),
    ]
    return _model(nodes, [_in("x", ["N", 2, 7]), _in("flag", [], TensorProto.BOOL)], [_out("out")], opset=11)


@_seeded
def swish_and_dense() -> onnx.ModelProto:
    """Conv -> x*Sigmoid(x) (exported SiLU), Flatten, MatMul+Add+Relu (dense), Gemm (dense head)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
        helper.make_node("Mul", ["c", "s"], ["silu"], name="silu"),
        helper.make_node("Flatten", ["silu"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "wd"], ["d"], name="dense1"),
        helper.make_node("Add", ["d", "bd"], ["db"], name="dense1_bias"),
        helper.make_node("Relu", ["db"], ["dr"], name="dense1_relu"),
        helper.make_node("Gemm", ["dr", "wg", "bg"], ["logits"], name="head", transB=1),
    ]
    inits = [
        numpy_helper.from_array(_w(3, 1, 3, 3), "w"),
        numpy_helper.from_array(_w(3 * 16, 6), "wd"),
        numpy_helper.from_array(_w(6), "bd"),
        numpy_helper.from_array(_w(4, 6), "wg"),
        numpy_helper.from_array(_w(4), "bg"),
    ]
    return _model(nodes, [_in("x", ["N", 1, 4, 4])], [_out("logits")], inits)


@_seeded
def quantized_qdq() -> onnx.ModelProto:
    """QDQ conv: weights through DequantizeLinear, output through QuantizeLinear/DequantizeLinear."""
    wq = np.clip(np.round(_w(3, 2, 3, 3) * 40), -127, 127).astype(np.int8)
    inits = [
        numpy_helper.from_array(wq, "wq"),
        numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
        numpy_helper.from_array(np.array(0, np.int8), "yz"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq_w"),
        helper.make_node("Conv", ["x", "w"], ["c"], name="qdq_conv", pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["out"], name="dq_out"),
    ]
    return _model(nodes, [_in("x", ["N", 2, 5, 5])], [_out("out")], inits, opset=13)


@_seeded
def conv_integer() -> onnx.ModelProto:
    """Dynamic quantization: DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul(scale) (as onnxruntime emits)."""
    wq = np.clip(np.round(_w(3, 2, 3, 3) * 40) + 128, 0, 255).astype(np.uint8)
    inits = [
        numpy_helper.from_array(wq, "wq"),
        numpy_helper.from_array(np.array(128, np.uint8), "wz"),
        numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
    ]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dql"),
        helper.make_node("ConvInteger", ["xq", "wq", "xz", "wz"], ["ci"], name="conv_int", pads=[1, 1, 1, 1]),
        helper.make_node("Cast", ["ci"], ["cf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xs", "ws"], ["scale"], name="scale"),
        helper.make_node("Mul", ["cf", "scale"], ["out"], name="rescale"),
    ]
    return _model(nodes, [_in("x", ["N", 2, 5, 5])], [_out("out")], inits, opset=13)


@_seeded
def qlinear_conv_only() -> onnx.ModelProto:
    """A fully quantized QLinearConv whose output stays uint8 to the graph output: must be refused."""
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(128, np.uint8), "xz"),
        numpy_helper.from_array(np.full((3, 2, 1, 1), 3, np.uint8), "wq"),
        numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
        numpy_helper.from_array(np.array(128, np.uint8), "wz"),
        numpy_helper.from_array(np.array(0.1, np.float32), "ys"),
        numpy_helper.from_array(np.array(128, np.uint8), "yz"),
    ]
    nodes = [
        helper.make_node("QLinearConv", ["x", "xs", "xz", "wq", "ws", "wz", "ys", "yz"], ["y"], name="qconv")
    ]
    return _model(
        nodes, [_in("x", ["N", 2, 4, 4], TensorProto.UINT8)], [_out("y", TensorProto.UINT8)], inits, opset=13
    )


@_seeded
def no_units() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return _model(nodes, [_in("x", ["N", 3])], [_out("y")])


@_seeded
def old_opset() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    model = _model(
        nodes,
        [_in("x", ["N", 1, 3, 3])],
        [_out("y")],
        [numpy_helper.from_array(_w(2, 1, 1, 1), "w")],
        opset=6,
    )
    return model


def save(model: onnx.ModelProto, path: Path, external: bool = False, location: str | None = None) -> Path:
    """Save a model; with `external`, every initializer goes to one external data file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            location=location or path.stem + ".data",
            size_threshold=0,
        )
    else:
        onnx.save(model, str(path))
    return path


@_seeded
def decomposed_activations() -> onnx.ModelProto:
    """Paddle-style hard-swish x*Clip(x+3,0,6)/6 and GELU x*(Erf(x/sqrt2)+1)*0.5, then an SE-style gate."""
    consts = {
        "three": np.array(3.0, np.float32),
        "zero": np.array(0.0, np.float32),
        "six": np.array(6.0, np.float32),
        "sqrt2": np.array(np.sqrt(2.0), np.float32),
        "one": np.array(1.0, np.float32),
        "half": np.array(0.5, np.float32),
    }
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    inits += [
        numpy_helper.from_array(_w(4, 2, 3, 3), "w1"),
        numpy_helper.from_array(_w(4, 4, 1, 1), "w2"),
        numpy_helper.from_array(_w(4, 4, 1, 1), "w3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv_hswish", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c1", "three"], ["a1"], name="hs_add"),
        helper.make_node("Clip", ["a1", "zero", "six"], ["k1"], name="hs_clip"),
        helper.make_node("Mul", ["c1", "k1"], ["m1"], name="hs_mul"),
        helper.make_node("Div", ["m1", "six"], ["h1"], name="hs_div"),
        helper.make_node("Conv", ["h1", "w2"], ["c2"], name="conv_gelu"),
        helper.make_node("Div", ["c2", "sqrt2"], ["d2"], name="gelu_div"),
        helper.make_node("Erf", ["d2"], ["e2"], name="gelu_erf"),
        helper.make_node("Add", ["e2", "one"], ["a2"], name="gelu_add"),
        helper.make_node("Mul", ["c2", "a2"], ["m2"], name="gelu_mul"),
        helper.make_node("Mul", ["m2", "half"], ["g2"], name="gelu_half"),
        # SE gate: the feature map is read twice (pool and gate multiply), so its mask sits right here.
        helper.make_node("GlobalAveragePool", ["g2"], ["p3"], name="se_pool"),
        helper.make_node("Conv", ["p3", "w3"], ["c3"], name="conv_se"),
        helper.make_node("HardSigmoid", ["c3"], ["s3"], name="se_gate"),
        helper.make_node("Mul", ["g2", "s3"], ["out"], name="se_mul"),
    ]
    return _model(nodes, [_in("x", ["N", 2, 5, 5])], [_out("out")], inits)


@_seeded
def fixed_batch() -> onnx.ModelProto:
    """A conv whose input has a fixed batch of 1 (as the light zoo and ddddocr exports)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    return _model(
        nodes, [_in("x", [1, 2, 4, 4])], [_out("y")], [numpy_helper.from_array(_w(3, 2, 1, 1), "w")]
    )


# Hand-built models with units, and the unit kinds to instrument them with (shared by runtime tests).
UNIT_MODELS = {
    "residual": (conv_bn_relu_residual, "conv"),
    "producers": (weights_via_producers, "conv"),
    "if": (conv_in_if, "conv"),
    "swish_dense": (swish_and_dense, "conv,dense"),
    "qdq": (quantized_qdq, "conv"),
    "convinteger": (conv_integer, "conv"),
    "conv1d": (lambda: conv_variants(1), "conv"),
    "convtranspose3d": (lambda: conv_variants(3, True), "conv"),
    "fp16": (lambda: conv_variants(2, False, np.float16), "conv"),
}
