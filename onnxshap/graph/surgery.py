"""Insert one mask input and one Mul per unit layer (onnx-graphsurgeon)."""

from __future__ import annotations

import logging
import re

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from onnxshap.errors import ModelError
from onnxshap.graph.discovery import find_candidates
from onnxshap.graph.loading import LoadedModel, bind_external_data
from onnxshap.graph.placement import place_mask
from onnxshap.graph.units import PLACEMENTS, UNIT_KINDS, SkippedLayer, UnitLayer, UnitTable

MASK_BATCH_DIM = "onnxshap_mask_batch"
MASK_PREFIX = "onnxshap_mask_"
# Ops whose result for one batch item depends on the others (one quantisation scale for the whole batch).
BATCH_COUPLING_OPS = {"DynamicQuantizeLinear", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul"}
log = logging.getLogger(__name__)
gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR


def parse_kinds(units: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'conv,dense' -> ('conv', 'dense'), validated."""
    kinds = tuple(k.strip() for k in (units.split(",") if isinstance(units, str) else units) if k.strip())
    bad = [k for k in kinds if k not in UNIT_KINDS]
    if bad or not kinds:
        raise ModelError(f"unknown unit kind {','.join(bad) or '(none)'}; choose from {','.join(UNIT_KINDS)}")
    return kinds


def _infer(model: onnx.ModelProto, kinds: tuple[str, ...] = ("conv",)) -> onnx.ModelProto:
    try:
        inferred = onnx.shape_inference.infer_shapes(
            model, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception as exc:  # inference is a help, not a requirement
        log.warning("shape inference failed (%s); relying on weight shapes", exc)
        inferred = model
    if "dense" in kinds and _dense_outputs_without_rank(inferred.graph):
        inferred = _infer_symbolic(model) or inferred
    return inferred


def _dense_outputs_without_rank(graph: onnx.GraphProto) -> bool:
    """Whether a main-graph MatMul/Gemm output has no inferred shape (its rank decides the mask's shape)."""
    known = {v.name for v in graph.value_info if v.type.tensor_type.HasField("shape")}
    known.update(v.name for v in graph.output if v.type.tensor_type.HasField("shape"))
    return any(n.op_type in ("MatMul", "Gemm") and n.output[0] not in known for n in graph.node)


def _infer_symbolic(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """ONNX Runtime's symbolic shape inference: follows Reshape/Transpose chains that ONNX's own inference
    leaves unknown (e.g. the dense layers of transformer necks exported by paddle2onnx). None if it fails."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception as exc:  # a help, as above
        log.warning("symbolic shape inference failed (%s); dense layers of unknown rank are skipped", exc)
        return None


def _value_info_names(graph: onnx.GraphProto, names: set[str]) -> set[str]:
    names.update(v.name for v in graph.value_info)
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _value_info_names(sub, names)
    return names


def _drop_new_value_info(graph: onnx.GraphProto, keep: set[str]) -> None:
    """Remove value_info that shape inference added, so ORT infers shapes itself as for the original."""
    kept = [v for v in graph.value_info if v.name in keep]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _drop_new_value_info(sub, keep)


def _insert_mul(
    graph: gs.Graph, tensor: gs.Variable, mask: gs.Variable, name: str, mean: np.ndarray | None = None
) -> None:
    """Rename the tensor's producer output and let a Mul produce the original name again.

    With `mean` (per-channel values shaped like the mask, batch 1) a removed channel outputs its mean:
    x * m + mean * (1 - m), computed as Add(Mul(x, m), Mul(mean, Sub(1, m))) so that m = 1 gives x bit
    for bit (x + 0). The mean is a constant initializer; every new node reads the mask, so a graph cut
    before the masks keeps all of them on the coalition side.
    """
    producer = tensor.inputs[0]
    pre = gs.Variable(f"{tensor.name}__onnxshap_unmasked", dtype=tensor.dtype, shape=tensor.shape)
    index = next(i for i, out in enumerate(producer.outputs) if out is tensor)
    producer.outputs[index] = pre
    position = next(i for i, n in enumerate(graph.nodes) if n is producer)
    if mean is None:
        graph.nodes.insert(position + 1, gs.Node("Mul", name=name, inputs=[pre, mask], outputs=[tensor]))
        return
    dtype = np.dtype(mask.dtype)
    kept = gs.Variable(f"{tensor.name}__onnxshap_kept", dtype=tensor.dtype, shape=tensor.shape)
    removed = gs.Variable(f"{mask.name}__removed", dtype=dtype)
    fill = gs.Variable(f"{mask.name}__fill", dtype=dtype)
    one = gs.Constant(f"{mask.name}__one", np.ones((), dtype=dtype))
    mu = gs.Constant(f"{mask.name}__mean", np.asarray(mean, dtype=dtype))
    nodes = [
        gs.Node("Mul", name=name, inputs=[pre, mask], outputs=[kept]),
        gs.Node("Sub", name=f"{name}_removed", inputs=[one, mask], outputs=[removed]),
        gs.Node("Mul", name=f"{name}_fill", inputs=[mu, removed], outputs=[fill]),
        gs.Node("Add", name=f"{name}_mean", inputs=[kept, fill], outputs=[tensor]),
    ]
    graph.nodes[position + 1 : position + 1] = nodes


def _batch_coupling_ops(graph: onnx.GraphProto, found: set[str]) -> set[str]:
    for node in graph.node:
        if node.op_type in BATCH_COUPLING_OPS:
            found.add(node.op_type)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _batch_coupling_ops(sub, found)
    return found


def _compile_exclude(exclude: str | None) -> re.Pattern | None:
    if not exclude:
        return None
    try:
        return re.compile(exclude)
    except re.error as exc:
        raise ModelError(f"--exclude is not a valid regular expression: {exc}") from None


def instrument_model(
    loaded: LoadedModel,
    units: str | tuple[str, ...] = "conv",
    placement: str = "after-chain",
    exclude: str | None = None,
    means: dict[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, UnitTable]:
    """Return the instrumented model (mask inputs added) and its unit table.

    `exclude` is a regular expression; layers whose name it matches (re.search) are left out and reported.
    `means` ({layer: per-channel values}) switches to mean removal: a removed unit outputs its value there.
    """
    graph, table = build_masked_graph(loaded, units, placement, exclude, means)
    return export_model(loaded, graph), table


def export_model(loaded: LoadedModel, graph: gs.Graph) -> onnx.ModelProto:
    """The gs graph as a model with the original's metadata, opsets and hand-written value_info only."""
    original = loaded.proto
    exported = gs.export_onnx(graph, do_type_check=False)
    model = onnx.ModelProto()
    model.CopyFrom(original)
    model.graph.CopyFrom(exported.graph)
    _drop_new_value_info(model.graph, _value_info_names(original.graph, set()))
    return model


def build_masked_graph(
    loaded: LoadedModel,
    units: str | tuple[str, ...] = "conv",
    placement: str = "after-chain",
    exclude: str | None = None,
    means: dict[str, np.ndarray] | None = None,
) -> tuple[gs.Graph, UnitTable]:
    """The model's gs graph with a mask input and Mul per unit layer, and the unit table.

    With `means` ({layer name: [channels] values}) every layer gets mean removal (see `_insert_mul`).
    """
    kinds = parse_kinds(units)
    excluded = _compile_exclude(exclude)
    if placement not in PLACEMENTS:
        raise ModelError(f"unknown placement {placement!r}; choose from {', '.join(PLACEMENTS)}")
    original = loaded.proto
    try:
        graph = gs.import_onnx(_infer(original, kinds))
    except Exception as exc:
        raise ModelError(
            f"cannot read the model's graph ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    bind_external_data(graph, loaded.base_dir)  # weights read later come from the model's folder

    layers: list[UnitLayer] = []
    skipped: list[SkippedLayer] = []
    offset = 0
    for cand in find_candidates(graph, kinds):
        if excluded is not None and excluded.search(cand.name):
            skipped.append(SkippedLayer(cand.name, cand.node.op, f"excluded by {exclude!r}"))
            continue
        if cand.reason is not None:
            skipped.append(SkippedLayer(cand.name, cand.node.op, cand.reason))
            continue
        where = place_mask(cand.node, cand.scope.graph, cand.channel_axis, cand.rank, placement)
        if where.tensor is None:
            skipped.append(SkippedLayer(cand.name, cand.node.op, where.reason or "cannot place mask"))
            continue
        if not cand.scope.graph.nodes or where.tensor.inputs[0] not in cand.scope.graph.nodes:
            skipped.append(SkippedLayer(cand.name, cand.node.op, "mask position not in the layer's graph"))
            continue
        index = len(layers)
        mask_name = f"{MASK_PREFIX}{index:04d}"
        shape: list[int | str] = [1] * cand.rank
        shape[0] = MASK_BATCH_DIM
        shape[cand.channel_axis] = cand.channels
        mask = gs.Variable(mask_name, dtype=where.dtype, shape=shape)
        graph.inputs.append(mask)
        masked_name = where.tensor.name
        mean = None
        if means is not None:
            if cand.name not in means:
                raise ModelError(f"no mean activation given for layer {cand.name}")
            values = np.asarray(means[cand.name], dtype=np.float64).reshape(-1)
            if values.shape != (cand.channels,) or not np.isfinite(values).all():
                raise ModelError(f"the mean activations of {cand.name} must be {cand.channels} finite values")
            mean_shape = [1] * cand.rank
            mean_shape[cand.channel_axis] = cand.channels
            mean = values.reshape(mean_shape)
        _insert_mul(cand.scope.graph, where.tensor, mask, f"onnxshap_mask_mul_{index:04d}", mean)
        layers.append(
            UnitLayer(
                layer=cand.name,
                op=cand.node.op,
                kind=cand.kind,
                graph=cand.scope.path,
                channels=int(cand.channels),
                channel_axis=int(cand.channel_axis),
                rank=int(cand.rank),
                mask_input=mask_name,
                masked_tensor=masked_name,
                chain=where.chain,
                weight=cand.weight,
                dtype=np.dtype(where.dtype).name,
                offset=offset,
                batch_aligned=cand.scope.batch_aligned,
            )
        )
        offset += int(cand.channels)

    table = UnitTable(
        layers=layers,
        skipped=skipped,
        placement=placement,
        kinds=kinds,
        model_path=str(loaded.path),
        batch_coupling_ops=tuple(sorted(_batch_coupling_ops(original.graph, set()))),
        exclude=exclude,
        removal="zero" if means is None else "mean",
    )
    if not layers:
        why = f"; skipped: {skipped[0].layer} ({skipped[0].reason})" if skipped else ""
        raise ModelError(f"no {'/'.join(kinds)} units found in {loaded.path.name}{why}")
    return graph, table
