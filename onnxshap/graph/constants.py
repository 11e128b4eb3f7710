"""Resolve constant tensors through their producers (initializer, Constant, ConstantOfShape, Identity, ...)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

# Ops that pass a constant through without changing its shape.
_SHAPE_PRESERVING = {"Identity", "Cast", "DequantizeLinear", "QuantizeLinear", "CastLike"}


def _constant_node_value(node: gs.Node) -> gs.Constant | np.ndarray | None:
    for key in ("value", "sparse_value"):
        value = node.attrs.get(key)
        if isinstance(value, gs.Constant):
            return value
    for key in ("value_float", "value_int"):
        if key in node.attrs:
            return np.asarray(node.attrs[key])
    for key in ("value_floats", "value_ints"):
        if key in node.attrs:
            return np.asarray(node.attrs[key])
    return None


def is_constant(tensor: gs.Tensor, depth: int = 0) -> bool:
    """True when the tensor's value is fixed by the model (no path from a graph input)."""
    if isinstance(tensor, gs.Constant):
        return True
    if depth > 16 or len(tensor.inputs) != 1:
        return False
    producer = tensor.inputs[0]
    if producer.op == "Constant":
        return True
    if producer.op in _SHAPE_PRESERVING or producer.op in (
        "ConstantOfShape",
        "Reshape",
        "Transpose",
        "Unsqueeze",
        "Squeeze",
        "Mul",
        "Add",
        "Div",
        "Sub",
    ):
        return all(is_constant(t, depth + 1) for t in producer.inputs if t is not None and t.name)
    return False


def constant_values(tensor: gs.Tensor, depth: int = 0) -> np.ndarray | None:
    """Values of a small constant (for shapes and scalars); None when not resolvable."""
    if isinstance(tensor, gs.Constant):
        try:
            return np.asarray(tensor.values)
        except Exception:
            return None
    if depth > 16 or len(tensor.inputs) != 1:
        return None
    producer = tensor.inputs[0]
    if producer.op == "Constant":
        value = _constant_node_value(producer)
        if isinstance(value, gs.Constant):
            return np.asarray(value.values)
        return value
    if producer.op in ("Identity", "Cast"):
        return constant_values(producer.inputs[0], depth + 1)
    return None


def constant_shape(tensor: gs.Tensor, depth: int = 0) -> tuple[int, ...] | None:
    """Shape of a constant tensor resolved through its producers; None when not resolvable."""
    if isinstance(tensor, gs.Constant):
        return tuple(int(d) for d in tensor.shape)
    if depth > 16 or len(tensor.inputs) != 1:
        return None
    producer = tensor.inputs[0]
    if producer.op == "Constant":
        value = _constant_node_value(producer)
        if value is None:
            return None
        return tuple(int(d) for d in value.shape)
    if producer.op in _SHAPE_PRESERVING:
        return constant_shape(producer.inputs[0], depth + 1)
    if producer.op == "ConstantOfShape":
        dims = constant_values(producer.inputs[0], depth + 1)
        if dims is None:
            return None
        return tuple(int(d) for d in np.asarray(dims).reshape(-1))
    return None


def inferred_shape(tensor: gs.Tensor) -> tuple[int | str | None, ...] | None:
    """Shape from shape inference (dims may be symbolic strings or None)."""
    if isinstance(tensor, gs.Constant):
        return tuple(int(d) for d in tensor.shape)
    if tensor.shape is None:
        return None
    return tuple(tensor.shape)


def static_numel(tensor: gs.Tensor) -> int | None:
    """Number of elements when every dim is known."""
    shape = (constant_shape(tensor) if is_constant(tensor) else None) or inferred_shape(tensor)
    if shape is None or any(not isinstance(d, int | np.integer) or d < 0 for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))
