"""Bake a set of removed units into a plain ONNX model (no mask inputs): the repaired model."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from onnxshap.errors import ModelError
from onnxshap.graph.discovery import iter_scopes
from onnxshap.graph.loading import LoadedModel
from onnxshap.graph.surgery import build_masked_graph, export_model
from onnxshap.graph.units import UnitLayer, UnitTable

# Ops with f(0) = 0 that act elementwise: zeroing the layer's output channel zeroes the chain's output too.
ZERO_PRESERVING = {"Relu", "LeakyRelu", "PRelu", "Identity", "Dropout", "Tanh", "HardSwish", "Elu", "Selu", "Celu",
                   "Softsign", "Gelu", "Mish", "Neg", "Abs", "Erf", "Sin"}  # fmt: skip


def _storage(tensor: gs.Tensor, node: gs.Node) -> gs.Constant | None:
    """The constant holding a parameter only `node` reads: an initializer or a Constant node's value."""
    if not all(c is node for c in tensor.outputs):
        return None
    if isinstance(tensor, gs.Constant):
        return tensor
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == "Constant":
        value = tensor.inputs[0].attrs.get("value")
        return value if isinstance(value, gs.Constant) else None
    return None


def _zero_rows(tensor: gs.Constant, rows: np.ndarray) -> None:
    values = np.array(tensor.values, copy=True)
    values[rows] = 0
    tensor.values = values
    tensor.data_location = None  # the new values are stored in the model, not in its external data


def _chain_nodes(mul: gs.Node, length: int) -> list[gs.Node] | None:
    """The `length` nodes before the mask Mul, followed backwards through their activation input."""
    nodes: list[gs.Node] = []
    tensor = mul.inputs[0]
    for _ in range(length + 1):
        if len(tensor.inputs) != 1:
            return None
        node = tensor.inputs[0]
        nodes.append(node)
        variables = [t for t in node.inputs if isinstance(t, gs.Variable)]
        if not variables:
            return None
        tensor = variables[0]
    return nodes[::-1]  # layer first


def _zero_preserving(node: gs.Node) -> bool:
    if node.op in ZERO_PRESERVING:
        return True
    if node.op in ("Mul", "Div") and len(node.inputs) == 2:
        other = node.inputs[1]
        return isinstance(other, gs.Constant) and np.isfinite(np.asarray(other.values)).all()
    if node.op == "Clip":
        bounds = [t for t in node.inputs[1:] if t is not None and t.name]
        if not all(isinstance(t, gs.Constant) for t in bounds):
            return False
        lo = float(np.asarray(bounds[0].values)) if bounds else -np.inf
        hi = float(np.asarray(bounds[1].values)) if len(bounds) > 1 else np.inf
        return lo <= 0 <= hi
    return False


def _try_fold(layer: UnitLayer, mul: gs.Node, removed: np.ndarray) -> bool:
    """Zero the producer's weights (conv) or BN scale/shift for removed channels; False if not safe."""
    if layer.op != "Conv":
        return False
    nodes = _chain_nodes(mul, len(layer.chain))
    if nodes is None or nodes[0].op != "Conv" or [n.op for n in nodes[1:]] != list(layer.chain):
        return False
    conv, rest = nodes[0], nodes[1:]
    if rest and rest[0].op == "BatchNormalization":
        bn, tail = rest[0], rest[1:]
        if not all(_zero_preserving(n) for n in tail):
            return False
        stores = [_storage(t, bn) for t in bn.inputs[1:3]]
        if any(st is None for st in stores):
            return False
        for st in stores:
            _zero_rows(st, removed)
        return True
    if not all(_zero_preserving(n) for n in rest):
        return False
    stores = [_storage(t, conv) for t in conv.inputs[1:3] if t is not None and t.name]
    if any(st is None for st in stores):
        return False
    for st in stores:
        _zero_rows(st, removed)
    return True


def _drop_mul(graph: gs.Graph, mul: gs.Node) -> None:
    """Remove the mask Mul and give its output name back to the tensor it multiplied."""
    pre, out = mul.inputs[0], mul.outputs[0]
    producer = pre.inputs[0]
    index = next(i for i, t in enumerate(producer.outputs) if t is pre)
    mul.inputs.clear()
    mul.outputs.clear()
    producer.outputs[index] = out
    graph.nodes.remove(mul)


def _mean_fill(graph: gs.Graph, mul: gs.Node, fill: np.ndarray, name: str) -> None:
    """After the (now constant) mask Mul, add the removed channels' means: x * keep + mean * (1 - keep)."""
    out = mul.outputs[0]
    kept = gs.Variable(f"{out.name}__onnxshap_kept", dtype=out.dtype, shape=out.shape)
    mul.outputs[0] = kept
    add = gs.Node("Add", name=f"{name}_mean", inputs=[kept, gs.Constant(f"{name}_fill", fill)], outputs=[out])
    position = next(i for i, n in enumerate(graph.nodes) if n is mul)
    graph.nodes.insert(position + 1, add)


def _fold_mean(layer: UnitLayer, mul: gs.Node, removed: np.ndarray, mean: np.ndarray) -> bool:
    """Mean removal on a raw Conv output (no chain): zero the removed filters' weights, set their bias to
    the mean. False when the bias or weights are not plain constants only this Conv reads."""
    if layer.op != "Conv" or layer.chain:
        return False
    nodes = _chain_nodes(mul, 0)
    if nodes is None or nodes[0].op != "Conv" or len(nodes[0].inputs) < 3 or not nodes[0].inputs[2].name:
        return False
    conv = nodes[0]
    weight, bias = _storage(conv.inputs[1], conv), _storage(conv.inputs[2], conv)
    if weight is None or bias is None:
        return False
    _zero_rows(weight, removed)
    values = np.array(bias.values, copy=True)
    values[removed] = mean[removed].astype(values.dtype)
    bias.values = values
    return True


def bake_removed(
    loaded: LoadedModel,
    table: UnitTable,
    keep: np.ndarray,
    fold: bool = True,
    means: np.ndarray | None = None,
) -> tuple[onnx.ModelProto, dict]:
    """A plain model where the units with keep=False are removed for good.

    Rebuilds the instrumented graph from the table's settings, then per layer either zeroes the producer's
    weights (conv, or the BatchNormalization right after it) when every later op in the chain keeps 0 at 0,
    or multiplies by a constant mask; layers with nothing removed get no node at all. Returns the model and
    a summary {"folded": [...], "constant_mul": [...]}.

    With ``means`` (one value per unit: the table was built for mean removal) a removed unit outputs its
    mean for good: folded into a raw Conv's weights and bias when the mask sits on the Conv output,
    otherwise a constant multiply and add (x * keep + mean * (1 - keep)).
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (table.n_units,):
        raise ModelError(f"keep must have {table.n_units} entries, got {keep.shape}")
    if means is None and table.removal == "mean":
        raise ModelError("this unit table was built for mean removal: pass the units' means")
    if means is not None:
        means = np.asarray(means, dtype=np.float64).reshape(-1)
        if means.shape != (table.n_units,):
            raise ModelError(f"means must have {table.n_units} entries, got {means.shape}")
    graph, rebuilt = build_masked_graph(loaded, table.kinds, table.placement, table.exclude)
    if rebuilt.unit_ids() != table.unit_ids():
        raise ModelError("this model's units do not match the run's unit table (another model or version?)")
    masks: dict[str, gs.Variable] = {t.name: t for t in graph.inputs if t.name.startswith("onnxshap_mask_")}
    muls = {}
    for scope in iter_scopes(graph):
        for node in scope.graph.nodes:
            if node.op == "Mul" and node.name.startswith("onnxshap_mask_mul_"):
                muls[node.inputs[1].name] = (node, scope.graph)
    summary: dict[str, list[str]] = {"folded": [], "constant_mul": []}
    for layer in rebuilt.layers:
        mul, owner = muls[layer.mask_input]
        layer_keep = keep[layer.offset : layer.offset + layer.channels]
        removed = np.flatnonzero(~layer_keep)
        layer_mean = None if means is None else means[layer.offset : layer.offset + layer.channels]
        if layer_mean is not None and removed.size:
            if fold and _fold_mean(layer, mul, removed, layer_mean):
                summary["folded"].append(layer.layer)
                _drop_mul(owner, mul)
            else:
                tag = layer.mask_input[len("onnxshap_mask_") :]
                shape = layer.mask_shape(1)
                mul.inputs[1] = gs.Constant(
                    f"onnxshap_keep_{tag}", layer_keep.astype(layer.dtype).reshape(shape)
                )
                fill = (layer_mean * ~layer_keep).astype(layer.dtype).reshape(shape)
                _mean_fill(owner, mul, fill, f"onnxshap_removed_{tag}")
                summary["constant_mul"].append(layer.layer)
        elif removed.size and fold and _try_fold(layer, mul, removed):
            summary["folded"].append(layer.layer)
            _drop_mul(owner, mul)
        elif removed.size:
            const = gs.Constant(
                f"onnxshap_keep_{layer.mask_input[len('onnxshap_mask_') :]}",
                layer_keep.astype(layer.dtype).reshape(layer.mask_shape(1)),
            )
            mul.inputs[1] = const
            summary["constant_mul"].append(layer.layer)
        else:
            _drop_mul(owner, mul)
        graph.inputs.remove(masks[layer.mask_input])
    return export_model(loaded, graph), summary
