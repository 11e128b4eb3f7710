"""Find the layers whose output channels (conv) or features (dense) are units, with their channel counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx_graphsurgeon as gs

from onnxshap.graph.constants import constant_shape, inferred_shape, is_constant

CONV_OPS = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> weight input index
DENSE_OPS = {"Gemm", "MatMul"}
_LOOP_OPS = {"Loop", "Scan"}


@dataclass
class GraphScope:
    """A graph (main or subgraph) with its readable path and whether its axis 0 is the model's batch."""

    graph: gs.Graph
    path: str
    batch_aligned: bool


@dataclass
class Candidate:
    """A layer that may carry units, before placement."""

    node: gs.Node
    scope: GraphScope
    name: str
    kind: str
    channels: int | None
    rank: int | None
    channel_axis: int | None
    weight: str | None
    reason: str | None = None  # why it cannot be used, when channels/rank are unknown


def iter_scopes(graph: gs.Graph, path: str = "main", batch_aligned: bool = True) -> Iterator[GraphScope]:
    """The graph and all nested subgraphs (If / Loop / Scan bodies), depth first."""
    yield GraphScope(graph, path, batch_aligned)
    for index, node in enumerate(graph.nodes):
        for key, attr in node.attrs.items():
            subgraphs = attr if isinstance(attr, list) else [attr]
            for sub in subgraphs:
                if isinstance(sub, gs.Graph):
                    owner = node.name or f"{node.op}_{index}"
                    prefix = "" if path == "main" else path + "/"
                    aligned = batch_aligned and node.op not in _LOOP_OPS
                    yield from iter_scopes(sub, f"{prefix}{owner}/{key}", aligned)


def _channels_from_weight(node: gs.Node, wshape: tuple[int, ...]) -> int | None:
    if not wshape:
        return None
    if node.op == "ConvTranspose":
        if len(wshape) < 2:
            return None
        return int(wshape[1]) * int(node.attrs.get("group", 1))
    return int(wshape[0])


def _conv_candidate(node: gs.Node, scope: GraphScope, name: str) -> Candidate:
    windex = CONV_OPS[node.op]
    weight = node.inputs[windex] if len(node.inputs) > windex else None
    wshape = constant_shape(weight) if weight is not None else None
    out_shape = inferred_shape(node.outputs[0])
    from_weight = _channels_from_weight(node, wshape) if wshape else None
    from_shape = out_shape[1] if out_shape is not None and len(out_shape) > 1 else None
    from_shape = int(from_shape) if isinstance(from_shape, int) else None
    channels = from_weight if from_weight is not None else from_shape
    rank = len(wshape) if wshape else (len(out_shape) if out_shape is not None else None)
    reason = None
    if from_weight is not None and from_shape is not None and from_weight != from_shape:
        reason = f"channel count unclear: weights say {from_weight}, shape inference says {from_shape}"
        channels = None
    elif channels is None:
        reason = "channel count unknown: weight shape not constant and shape inference gave no channel dim"
    elif rank is None:
        reason = "output rank unknown"
    return Candidate(node, scope, name, "conv", channels, rank, 1, weight.name if weight else None, reason)


def _dense_candidate(node: gs.Node, scope: GraphScope, name: str) -> Candidate | None:
    if len(node.inputs) < 2 or not is_constant(node.inputs[1]):
        return None  # MatMul of two activations (attention) is not a dense layer
    weight = node.inputs[1]
    wshape = constant_shape(weight)
    out_shape = inferred_shape(node.outputs[0])
    if node.op == "Gemm":
        rank = 2
        if wshape is not None and len(wshape) == 2:
            features = wshape[0] if node.attrs.get("transB", 0) else wshape[1]
        else:
            features = out_shape[1] if out_shape is not None and isinstance(out_shape[1], int) else None
    else:
        if wshape is not None and len(wshape) != 2:
            return None
        features = wshape[1] if wshape is not None else None
        rank = len(out_shape) if out_shape is not None else None
        if rank is None:
            a_shape = inferred_shape(node.inputs[0])
            rank = max(len(a_shape), 2) if a_shape is not None else None
    reason = None
    if features is None:
        reason = "feature count unknown"
    elif rank is None:
        reason = "output rank unknown"
    axis = (rank - 1) if rank else None
    return Candidate(node, scope, name, "dense", features, rank, axis, weight.name, reason)


def _unique_name(node: gs.Node, scope: GraphScope, index: int, seen: set[str]) -> str:
    base = node.name or f"{node.op}_{index}"
    name = base if scope.path == "main" else f"{scope.path}/{base}"
    if name in seen:
        suffix = 1
        while f"{name}#{suffix}" in seen:
            suffix += 1
        name = f"{name}#{suffix}"
    seen.add(name)
    return name


def find_candidates(graph: gs.Graph, kinds: tuple[str, ...]) -> list[Candidate]:
    """Every conv (and, if asked, dense) layer in graph order, subgraphs included."""
    found: list[Candidate] = []
    seen: set[str] = set()
    for scope in iter_scopes(graph):
        for index, node in enumerate(scope.graph.nodes):
            if node.domain not in ("", "ai.onnx", None):
                continue
            if "conv" in kinds and node.op in CONV_OPS:
                found.append(_conv_candidate(node, scope, _unique_name(node, scope, index, seen)))
            elif "dense" in kinds and node.op in DENSE_OPS:
                cand = _dense_candidate(node, scope, _unique_name(node, scope, index, seen))
                if cand is not None:
                    found.append(cand)
    return found
