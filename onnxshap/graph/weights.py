"""Per-unit weight norms read from the layers' weight producers (for the weight-magnitude baseline)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxshap.graph.constants import constant_values
from onnxshap.graph.discovery import CONV_OPS, iter_scopes
from onnxshap.graph.loading import LoadedModel
from onnxshap.graph.units import UnitTable


def weight_array(tensor: gs.Tensor, depth: int = 0) -> np.ndarray | None:
    """Values of a constant weight through initializer, Constant, Identity, Cast, ConstantOfShape, DequantizeLinear."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if depth > 8 or len(tensor.inputs) != 1:
        return None
    producer = tensor.inputs[0]
    if producer.op in ("Constant", "Identity", "Cast"):
        if producer.op == "Constant":
            return constant_values(tensor)
        inner = weight_array(producer.inputs[0], depth + 1)
        return None if inner is None else inner.astype(np.float32)
    if producer.op == "ConstantOfShape":
        shape = constant_values(producer.inputs[0])
        fill = producer.attrs.get("value")
        value = float(np.asarray(fill.values).reshape(-1)[0]) if isinstance(fill, gs.Constant) else 0.0
        return None if shape is None else np.full(tuple(int(d) for d in shape.reshape(-1)), value, np.float32)
    if producer.op == "DequantizeLinear":
        q = weight_array(producer.inputs[0], depth + 1)
        scale = weight_array(producer.inputs[1], depth + 1)
        if q is None or scale is None:
            return None
        zero = weight_array(producer.inputs[2], depth + 1) if len(producer.inputs) > 2 else None
        axis = int(producer.attrs.get("axis", 1))
        shape = [1] * q.ndim
        if scale.size > 1:
            shape[axis] = scale.size
        zp = 0 if zero is None else zero.reshape(shape if zero.size > 1 else ()).astype(np.float32)
        return (q.astype(np.float32) - zp) * scale.reshape(shape if scale.size > 1 else ())
    return None


def _unit_norms(node: gs.Node, channels: int) -> np.ndarray | None:
    if node.op in CONV_OPS:
        w = weight_array(node.inputs[CONV_OPS[node.op]])
        if w is None:
            return None
        w = w.astype(np.float64)
        zp_index = {"ConvInteger": 3, "QLinearConv": 5}.get(node.op)
        if zp_index is not None and len(node.inputs) > zp_index and node.inputs[zp_index].name:
            zp = weight_array(node.inputs[zp_index])
            if zp is not None:
                w = w - (zp.reshape(-1, *([1] * (w.ndim - 1))) if zp.size > 1 else zp.astype(np.float64))
        w = np.abs(w)
        if node.op == "ConvTranspose":
            group = int(node.attrs.get("group", 1))
            per_group = w.shape[1]
            w = w.reshape(group, w.shape[0] // group, per_group, -1).sum(axis=(1, 3))  # [group, out/group]
            return w.reshape(-1)[:channels]
        return w.reshape(w.shape[0], -1).sum(axis=1)
    w = weight_array(node.inputs[1])
    if w is None or w.ndim != 2:
        return None
    w = np.abs(w.astype(np.float64))
    if node.op == "Gemm" and node.attrs.get("transB", 0):
        return w.sum(axis=1)
    return w.sum(axis=0)


def weight_norms(loaded: LoadedModel, table: UnitTable) -> np.ndarray:
    """L1 norm of each unit's incoming weights, [n_units] (NaN where the weights are not constant)."""
    from onnxshap.graph.surgery import build_masked_graph

    graph, rebuilt = build_masked_graph(loaded, table.kinds, table.placement, table.exclude)
    by_name: dict[str, gs.Node] = {}
    for scope in iter_scopes(graph):
        for index, node in enumerate(scope.graph.nodes):
            base = node.name or f"{node.op}_{index}"
            by_name.setdefault(base if scope.path == "main" else f"{scope.path}/{base}", node)
    norms = np.full(table.n_units, np.nan)
    for layer in rebuilt.layers:
        node = by_name.get(layer.layer.split("#")[0])
        values = _unit_norms(node, layer.channels) if node is not None else None
        if values is not None and values.shape == (layer.channels,):
            norms[layer.offset : layer.offset + layer.channels] = values
    return norms
