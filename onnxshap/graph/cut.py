"""Cut an instrumented graph where the masks start: a prefix that no mask reaches, and the rest.

The prefix depends only on the data, so it can run once per data batch; coalitions are then evaluated
on the suffix alone, fed with the prefix's outputs (the *frontier*). Nodes that depend on neither data
nor masks (Constant, shape arithmetic on initializers) are copied to whichever side needs them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import onnx
from onnx import helper

log = logging.getLogger(__name__)

_COMPUTE_FREE = {"Constant", "Identity", "Shape", "Size", "Cast", "Reshape", "Unsqueeze", "Squeeze"}


@dataclass
class GraphCut:
    """Prefix (data inputs -> frontier) and suffix (frontier + masks -> the model's outputs)."""

    prefix: onnx.ModelProto
    suffix: onnx.ModelProto
    frontier: list[str]  # suffix inputs computed by the prefix
    passthrough: list[str]  # data inputs the suffix reads directly
    prefix_inputs: list[str]  # data inputs the prefix reads
    prefix_ops: list[str]  # op types moved out of the coalition loop


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes (used but not defined inside it)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.name for t in graph.sparse_initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for sub in _subgraphs(node):
            used |= _outer_names(sub)
        defined.update(n for n in node.output if n)
    used.update(o.name for o in graph.output)
    return used - defined


def _reads(node: onnx.NodeProto) -> set[str]:
    names = {n for n in node.input if n}
    for sub in _subgraphs(node):
        names |= _outer_names(sub)
    return names


def _closure(nodes: list[onnx.NodeProto], wanted: Iterable[str], stop: set[str]) -> list[int]:
    """Indices (in graph order) of the nodes needed to compute `wanted` from the names in `stop`."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    need: set[int] = set()
    todo = [n for n in wanted if n not in stop]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        seen.add(name)
        i = producer.get(name)
        if i is None or i in need:
            continue
        need.add(i)
        todo.extend(_reads(nodes[i]))
    return sorted(need)


def _type_only(info: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(info)
    if out.type.HasField("tensor_type"):
        out.type.tensor_type.ClearField("shape")
    return out


def free_input_dims(model: onnx.ModelProto, ranks: dict[str, int]) -> onnx.ModelProto:
    """A copy of `model` whose inputs named in `ranks` are declared with that rank and free dimensions."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for info in out.graph.input:
        if info.name in ranks:
            shape = info.type.tensor_type.shape
            shape.ClearField("dim")
            for i in range(ranks[info.name]):
                shape.dim.add().dim_param = f"{info.name}_dim{i}"
    return out


def _model(
    source: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    name: str,
) -> onnx.ModelProto:
    g = source.graph
    read: set[str] = set()
    for node in nodes:
        read |= _reads(node)
    read.update(o.name for o in outputs)
    # Output shapes as declared by exporters can be wrong, rank included (ORT merely warns about that in
    # run() but refuses it with IOBinding): keep the element types and let ORT infer the shapes. These
    # models are only for ORT (onnx.checker wants a shape on graph outputs).
    outputs = [_type_only(o) for o in outputs]
    initializers = [t for t in g.initializer if t.name in read]
    if source.ir_version < 4:  # IR 3 lists every initializer among the graph inputs
        have = {i.name for i in inputs}
        wanted = {t.name for t in initializers}
        inputs = inputs + [i for i in g.input if i.name in wanted and i.name not in have]
    graph = helper.make_graph(
        nodes,
        f"{g.name}_{name}",
        inputs,
        outputs,
        initializer=initializers,
        sparse_initializer=[t for t in g.sparse_initializer if t.name in read],
    )
    model = helper.make_model(graph, opset_imports=list(source.opset_import))
    model.ir_version = source.ir_version
    model.functions.extend(source.functions)
    return model


def mask_dependent_nodes(model: onnx.ModelProto, masks: set[str]) -> list[int]:
    """Indices of the main-graph nodes whose result depends on any of `masks` (through subgraphs too)."""
    dep = set(masks)
    found = []
    for i, node in enumerate(model.graph.node):
        if _reads(node) & dep:
            dep.update(o for o in node.output if o)
            found.append(i)
    return found


def keep_outputs(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """`model` reduced to the nodes that compute `outputs` (ONNX Runtime runs every node otherwise)."""
    g = model.graph
    by_name = {o.name: o for o in g.output}
    nodes = list(g.node)
    init_names = {t.name for t in g.initializer}
    idx = _closure(nodes, outputs, {i.name for i in g.input} - init_names)
    kept = [nodes[i] for i in idx]
    reads = set(outputs)
    for node in kept:
        reads |= _reads(node)
    inputs = [i for i in g.input if i.name in reads or i.name not in init_names]
    return _model(model, kept, inputs, [by_name[o] for o in outputs], "outputs")


def cut_before_masks(
    model: onnx.ModelProto,
    mask_inputs: set[str],
    outputs: list[str] | None = None,
    inferred: onnx.ModelProto | None = None,
) -> GraphCut | None:
    """Split `model` at the earliest masked layer; None when the prefix would do no real work.

    `outputs`: the model outputs the suffix must compute (default: all). `inferred` is `model` after
    shape inference (types of the frontier tensors come from it; computed here when not given). Refused
    (None, logged) when a frontier tensor's type is unknown.
    """
    if outputs is not None:
        model = keep_outputs(model, outputs)
    g = model.graph
    init_names = {t.name for t in g.initializer} | {t.name for t in g.sparse_initializer}
    data_inputs = [i.name for i in g.input if i.name not in mask_inputs and i.name not in init_names]
    data_dep: set[str] = set(data_inputs)
    mask_dep: set[str] = set(mask_inputs)
    nodes = list(g.node)
    prefix_nodes: list[int] = []
    for i, node in enumerate(nodes):
        reads = _reads(node)
        outs = [o for o in node.output if o]
        if reads & mask_dep:
            mask_dep.update(outs)
        elif reads & data_dep:
            data_dep.update(outs)
            prefix_nodes.append(i)
    if not any(nodes[i].op_type not in _COMPUTE_FREE for i in prefix_nodes):
        return None
    prefix_out = {o for i in prefix_nodes for o in nodes[i].output if o}
    suffix_idx = set(range(len(nodes))) - set(prefix_nodes)
    consumed_by_suffix: set[str] = set()
    for i in suffix_idx:
        consumed_by_suffix |= _reads(nodes[i])
    graph_outputs = [o.name for o in g.output]
    boundary = (consumed_by_suffix | set(graph_outputs)) & (prefix_out | set(data_inputs))
    frontier = sorted(boundary & prefix_out)
    passthrough = [n for n in data_inputs if n in boundary]

    inferred = inferred or onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    types = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    missing = [n for n in frontier if n not in types or not types[n].type.HasField("tensor_type")]
    if missing:
        log.info("no graph cut: the type of %s is unknown", missing[0])
        return None
    inputs_by_name = {i.name: i for i in g.input}

    pre_idx = _closure(nodes, frontier, set(data_inputs))
    suf_stop = set(frontier) | set(passthrough) | set(mask_inputs)
    suf_idx = _closure(nodes, graph_outputs, suf_stop)
    if set(pre_idx) & set(suf_idx) - {i for i in pre_idx if nodes[i].op_type in _COMPUTE_FREE}:
        return None  # a data-dependent compute node would run on both sides: nothing to gain
    pre_nodes = [nodes[i] for i in pre_idx]
    prefix_reads: set[str] = set()
    for node in pre_nodes:
        prefix_reads |= _reads(node)
    prefix_inputs = [n for n in data_inputs if n in prefix_reads]
    prefix = _model(
        model,
        pre_nodes,
        [inputs_by_name[n] for n in prefix_inputs],
        [types[n] for n in frontier],
        "prefix",
    )
    suffix = _model(
        model,
        [nodes[i] for i in suf_idx],
        [types[n] for n in frontier]
        + [inputs_by_name[n] for n in passthrough]
        + [i for i in g.input if i.name in mask_inputs],
        list(g.output),
        "suffix",
    )
    return GraphCut(
        prefix=prefix,
        suffix=suffix,
        frontier=frontier,
        passthrough=passthrough,
        prefix_inputs=prefix_inputs,
        prefix_ops=[n.op_type for n in pre_nodes],
    )
