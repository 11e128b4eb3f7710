"""Multiply-add counts of a model's convolutions and matrix products, and the share of them after a mask.

Used to state the floor of leave-one-out's cost with a per-layer cut: removing a unit of layer L changes
only what L's mask feeds, so a perfect cut costs, per unit, the FLOPs of the nodes that depend on L's
mask. Only Conv, ConvTranspose, ConvInteger, Gemm and MatMul are counted (2 FLOPs per multiply-add);
element-wise ops, pooling and normalisations are left out (a few percent on conv nets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import onnx

from onnxshap.graph.cut import mask_dependent_nodes
from onnxshap.graph.units import UnitLayer

_CONV = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"}
_MATMUL = {"MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"}


def _with_input_shapes(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for info in out.graph.input:
        if info.name in shapes:
            dims = info.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[info.name]:
                dims.add().dim_value = int(d)
    return out


def _shape(info: onnx.ValueInfoProto | None) -> list[int] | None:
    if info is None or not info.type.HasField("tensor_type"):
        return None
    dims = info.type.tensor_type.shape.dim
    if not dims or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return None
    return [d.dim_value for d in dims]


def node_flops(model: onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    """FLOPs of each main-graph node (0 for uncounted ops or unknown shapes) for inputs of these shapes."""
    fixed = _with_input_shapes(model, input_shapes)
    inferred = onnx.shape_inference.infer_shapes(fixed, check_type=False, strict_mode=False)
    g = inferred.graph
    infos = {v.name: v for v in [*g.input, *g.value_info, *g.output]}
    weights = {t.name: list(t.dims) for t in g.initializer}
    for node in g.node:  # weights fed by Constant nodes (Paddle exports)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    weights[node.output[0]] = list(attr.t.dims)

    def shape_of(name: str) -> list[int] | None:
        return weights.get(name) or _shape(infos.get(name))

    flops = np.zeros(len(g.node))
    for i, node in enumerate(g.node):
        if node.op_type not in _CONV | _MATMUL:
            continue
        w_name = node.input[3] if node.op_type in ("QLinearConv", "QLinearMatMul") else node.input[1]
        out, w = shape_of(node.output[0]), shape_of(w_name)
        if out is None or w is None:
            continue
        if node.op_type in _CONV:
            if node.op_type == "ConvTranspose":
                x = shape_of(node.input[0])
                if x is None:
                    continue
                # every input element meets C_out/group * kernel weights
                flops[i] = 2.0 * np.prod(x, dtype=np.float64) * w[1] * np.prod(w[2:], dtype=np.float64)
            else:
                flops[i] = 2.0 * np.prod(out, dtype=np.float64) * np.prod(w[1:], dtype=np.float64)
        else:
            if node.op_type == "Gemm":
                k = w[1] if any(a.name == "transB" and a.i for a in node.attribute) else w[0]
            else:
                k = w[-2] if len(w) >= 2 else w[0]
            flops[i] = 2.0 * np.prod(out, dtype=np.float64) * k
    return flops


def flops_after(
    model: onnx.ModelProto, layers: Iterable[UnitLayer], input_shapes: Mapping[str, tuple[int, ...]]
) -> tuple[float, dict[str, float]]:
    """(FLOPs of the whole instrumented model, {layer: FLOPs of the main-graph nodes its mask feeds})
    for data inputs of these shapes (masks at their shape for one coalition)."""
    layers = list(layers)
    shapes = {**{la.mask_input: la.mask_shape(1) for la in layers}, **input_shapes}
    flops = node_flops(model, shapes)
    after = {la.layer: float(flops[mask_dependent_nodes(model, {la.mask_input})].sum()) for la in layers}
    return float(flops.sum()), after
