"""Where a layer's mask goes: after the run of per-channel ops that follow it, or on its raw output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from onnxshap.graph.constants import constant_shape, inferred_shape, is_constant, static_numel

# Elementwise ops of one tensor input: they never mix channels, whatever the axis.
UNARY_ELEMENTWISE = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Tanh", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Gelu", "Mish", "ThresholdedRelu", "Identity", "Dropout", "Cast", "Neg", "Abs",
    "Swish", "Erf", "Exp", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
}  # fmt: skip
# Elementwise ops whose other operand must be a constant (or a runtime scalar) so the op stays per channel.
BINARY_ELEMENTWISE = {"Mul", "Add", "Sub", "Div", "PRelu", "QuantizeLinear", "DequantizeLinear"}
# Normalisations that act per channel on axis 1.
PER_CHANNEL_AXIS1 = {"BatchNormalization", "InstanceNormalization"}
FLOAT_DTYPES = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}


@dataclass
class Placement:
    """The tensor to mask and the ops passed on the way there."""

    tensor: gs.Variable | None
    chain: tuple[str, ...]
    dtype: np.dtype | None
    reason: str | None = None  # why no float tensor could be masked


def _dtype_after(node: gs.Node, in_dtype: np.dtype | None) -> np.dtype | None:
    out = node.outputs[0]
    if out.dtype is not None:
        return np.dtype(out.dtype)
    if node.op == "Cast":
        import onnx.helper

        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(node.attrs["to"])))
    if node.op == "DequantizeLinear":
        scale = node.inputs[1]
        return np.dtype(scale.dtype) if scale.dtype is not None else np.dtype(np.float32)
    if node.op == "QuantizeLinear":
        return None
    return in_dtype


def _layer_output_dtype(node: gs.Node) -> np.dtype | None:
    out = node.outputs[0]
    if out.dtype is not None:
        return np.dtype(out.dtype)
    if node.op == "ConvInteger":
        return np.dtype(np.int32)
    if node.op == "QLinearConv":
        return None
    x = node.inputs[0]
    return np.dtype(x.dtype) if x.dtype is not None else None


def _broadcasts_into(other: gs.Tensor, x: gs.Tensor, rank: int) -> bool:
    """The constant/scalar operand cannot grow x's shape (so the op stays elementwise on x)."""
    numel = static_numel(other)
    if numel == 1:
        return True
    shape = (constant_shape(other) if is_constant(other) else None) or inferred_shape(other)
    if shape is None or len(shape) > rank:
        return False
    xshape = inferred_shape(x)
    if xshape is None:
        # Without x's shape, trust only per-channel-shaped constants such as [C,1,1].
        return is_constant(other)
    for o, d in zip(reversed(shape), reversed(xshape), strict=False):
        if o == 1:
            continue
        if not isinstance(o, int | np.integer) or o != d:
            return False
    return True


def _parameter_like(other: gs.Tensor, channel_axis: int, rank: int) -> bool:
    """A run-time tensor shaped like a per-channel parameter ([1,C,1,1]): no batch or spatial content.

    Dynamically quantized models compute their bias from the input's scale at run time; such a tensor
    cannot carry other units' activations, so the op stays a per-channel affine step.
    """
    shape = inferred_shape(other)
    if shape is None or len(shape) > rank or not all(isinstance(d, int | np.integer) for d in shape):
        return False
    aligned = [1] * (rank - len(shape)) + [int(d) for d in shape]
    return all(d == 1 for axis, d in enumerate(aligned) if axis != channel_axis % rank)


def _is_per_channel(node: gs.Node, x: gs.Tensor, channel_axis: int, rank: int) -> bool:
    if node.domain not in ("", "ai.onnx", None) or not node.outputs:
        return False
    used_outputs = [o for o in node.outputs[1:] if o.outputs]
    if used_outputs:
        return False  # e.g. Dropout's mask or BatchNormalization's training outputs are read
    op = node.op
    if op in UNARY_ELEMENTWISE and op != "PRelu":
        return node.inputs[0] is x and all(t is None or not t.name or is_constant(t) for t in node.inputs[1:])
    if op in PER_CHANNEL_AXIS1:
        return channel_axis == 1 and node.inputs[0] is x and all(is_constant(t) for t in node.inputs[1:])
    if op in BINARY_ELEMENTWISE:
        if op in ("QuantizeLinear", "DequantizeLinear"):
            if node.inputs[0] is not x:
                return False
            axis = int(node.attrs.get("axis", 1))
            scale_numel = static_numel(node.inputs[1])
            return scale_numel == 1 or axis % rank == channel_axis % rank
        others = [t for t in node.inputs if t is not x]
        if len(others) != 1 or len(node.inputs) != 2:
            return False
        other = others[0]
        if not (is_constant(other) or static_numel(other) == 1 or _parameter_like(other, channel_axis, rank)):
            return False
        return _broadcasts_into(other, x, rank)
    return False


def _single_consumer(tensor: gs.Tensor, graph: gs.Graph, nodes_in_graph: set[int]) -> gs.Node | None:
    consumers = {id(n): n for n in tensor.outputs}
    if len(consumers) != 1 or tensor in graph.outputs:
        return None
    node = next(iter(consumers.values()))
    return node if id(node) in nodes_in_graph else None


def _gated_step(
    tensor: gs.Tensor, graph: gs.Graph, nodes_in_graph: set[int], channel_axis: int, rank: int
) -> tuple[gs.Node, list[str]] | None:
    """x -> g(x) -> Mul(x, g(x)): exported SiLU, hard-swish (Add-Clip-Mul), GELU (Div-Erf-Add-Mul), Mish.

    g must be a short run of per-channel ops, so the gated output still depends on channel c alone.
    """
    consumers = {id(n): n for n in tensor.outputs}
    if len(consumers) != 2 or tensor in graph.outputs:
        return None
    for join in consumers.values():
        if join.op != "Mul" or len(join.inputs) != 2:
            continue
        node = next(n for n in consumers.values() if n is not join)
        current, ops = tensor, []
        while (
            len(ops) < 5 and id(node) in nodes_in_graph and _is_per_channel(node, current, channel_axis, rank)
        ):
            ops.append(node.op)
            current = node.outputs[0]
            nxt = {id(n): n for n in current.outputs}
            if current in graph.outputs or len(nxt) != 1:
                break
            node = next(iter(nxt.values()))
            if node is join and current in join.inputs and tensor in join.inputs:
                return join, [*ops, "Mul"]
    return None


def place_mask(layer: gs.Node, graph: gs.Graph, channel_axis: int, rank: int, placement: str) -> Placement:
    """Pick the tensor to mask for one layer; prefer the end of its per-channel chain."""
    nodes_in_graph = {id(n) for n in graph.nodes}
    current = layer.outputs[0]
    dtype = _layer_output_dtype(layer)
    positions: list[tuple[gs.Variable, tuple[str, ...], np.dtype | None]] = [(current, (), dtype)]
    chain: list[str] = []
    while True:
        node = _single_consumer(current, graph, nodes_in_graph)
        if node is not None and _is_per_channel(node, current, channel_axis, rank):
            chain.append(node.op)
        else:
            step = _gated_step(current, graph, nodes_in_graph, channel_axis, rank)
            if step is None:
                break
            node, ops = step
            chain.extend(ops)
        dtype = _dtype_after(node, dtype)
        current = node.outputs[0]
        positions.append((current, tuple(chain), dtype))
    floats = [p for p in positions if p[2] is not None and p[2] in FLOAT_DTYPES]
    if not floats:
        ops = " -> ".join([layer.op, *chain]) if chain else layer.op
        return Placement(
            None,
            tuple(chain),
            None,
            f"output never becomes float ({ops}); a quantized tensor cannot be masked without requantization",
        )
    tensor, used_chain, mask_dtype = floats[0] if placement == "after-conv" else floats[-1]
    return Placement(tensor, used_chain, mask_dtype)
