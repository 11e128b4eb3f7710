"""Spatial activation maps of single units (for report pictures), via extra graph outputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxshap.graph.units import UnitLayer
from onnxshap.runtime.batching import item_runs
from onnxshap.runtime.evaluator import prepare_inputs, run_session
from onnxshap.runtime.session import input_metas

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel


def map_layers(inst: MaskedModel, unit_indices: Iterable[int]) -> dict[int, UnitLayer]:
    """{unit index: its layer} for the units that have a spatial map: main-graph conv units of rank-4 tensors."""
    layer_of = inst.units.unit_layers()
    found: dict[int, UnitLayer] = {}
    for index in unit_indices:
        i = int(index)
        if not 0 <= i < inst.n_units:
            raise IndexError(f"unit index {i} out of range for {inst.n_units} units")
        layer = inst.units.layers[int(layer_of[i])]
        if layer.graph == "main" and layer.kind == "conv" and layer.rank == 4 and layer.batch_aligned:
            found[i] = layer
    return found


def _with_outputs(model: onnx.ModelProto, layers: list[UnitLayer]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    existing = {o.name for o in out.graph.output}
    for layer in layers:
        if layer.masked_tensor not in existing:
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(layer.dtype))
            out.graph.output.append(onnx.helper.make_tensor_value_info(layer.masked_tensor, elem, None))
            existing.add(layer.masked_tensor)
    return out


def activation_maps(
    inst, inputs: np.ndarray | Mapping[str, np.ndarray], unit_indices: Iterable[int], batch: int = 32
) -> dict[int, np.ndarray]:
    """Per unit, its spatial map [n_inputs, H, W] (float32) in the full network (all masks at 1).

    Only main-graph conv units whose masked tensor is rank 4 get a map; other units are left out of the dict.
    The map is the unit's channel of its layer's masked tensor (after the per-channel chain, e.g. ReLU).
    """

    wanted = map_layers(inst, unit_indices)
    if not wanted:
        return {}
    layers = list({layer.layer: layer for layer in wanted.values()}.values())
    model = _with_outputs(inst.model, layers)
    session = inst.session_for(model, optimize=True).session
    masks = {layer.mask_input for layer in inst.units.layers}
    feeds = prepare_inputs(session, inst.bind(inputs), masks, fixed_batch=True)
    ones = inst.evaluator.masks_for(np.ones((1, inst.n_units), bool))
    names = [layer.masked_tensor for layer in layers]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for chunk, valid in item_runs(input_metas(session), feeds, batch):
        for name, act in zip(names, run_session(session, names, {**chunk, **ones}), strict=True):
            chunks[name].append(act[:valid])  # a fixed-batch model's last run is padded
    acts = {name: np.concatenate(parts) for name, parts in chunks.items()}
    maps: dict[int, np.ndarray] = {}
    for index, layer in wanted.items():
        act = acts[layer.masked_tensor]
        axis = layer.channel_axis % act.ndim
        maps[index] = np.take(act, index - layer.offset, axis=axis).astype(np.float32)
    return maps
