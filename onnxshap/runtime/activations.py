"""Mean absolute activation of every unit (the activation-magnitude baseline), via extra graph outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxshap.runtime.batching import item_runs
from onnxshap.runtime.evaluator import prepare_inputs, run_session
from onnxshap.runtime.session import input_metas

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel


def activation_model(inst: MaskedModel) -> tuple[onnx.ModelProto, list]:
    """A copy of the instrumented model that also outputs each main-graph layer's masked tensor."""
    model = onnx.ModelProto()
    model.CopyFrom(inst.model)
    existing = {o.name for o in model.graph.output}
    layers = [layer for layer in inst.units.layers if layer.graph == "main"]
    for layer in layers:
        if layer.masked_tensor not in existing:
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(layer.dtype))
            model.graph.output.append(onnx.helper.make_tensor_value_info(layer.masked_tensor, elem, None))
    return model, layers


def mean_activations(
    inst: MaskedModel, inputs: np.ndarray | Mapping[str, np.ndarray], batch: int = 64
) -> np.ndarray:
    """Mean |activation| per unit over items and positions, [n_units]; NaN for units inside subgraphs."""

    model, layers = activation_model(inst)
    session = inst.session_for(model, optimize=True).session
    masks = {layer.mask_input for layer in inst.units.layers}
    feeds = prepare_inputs(session, inputs, masks, fixed_batch=True)
    n = len(next(iter(feeds.values())))
    ones = inst.evaluator.masks_for(np.ones((1, inst.n_units), bool))
    sums = np.zeros(inst.n_units)
    names = [layer.masked_tensor for layer in layers]
    for chunk, valid in item_runs(input_metas(session), feeds, batch):
        outs = run_session(session, names, {**chunk, **ones})
        for layer, act in zip(layers, outs, strict=True):
            act = act[:valid]  # a fixed-batch model's last run is padded
            axes = tuple(a for a in range(act.ndim) if a != layer.channel_axis % act.ndim)
            sums[layer.offset : layer.offset + layer.channels] += np.abs(act.astype(np.float64)).mean(
                axis=axes
            ) * len(act)
    result = sums / n
    inside = np.ones(inst.n_units, bool)
    for layer in layers:
        inside[layer.offset : layer.offset + layer.channels] = False
    result[inside] = np.nan
    return result


def channel_means(
    inst: MaskedModel, inputs: np.ndarray | Mapping[str, np.ndarray], batch: int = 64
) -> np.ndarray:
    """Mean activation (signed) per unit over items and positions at the masked tensor, every unit kept,
    [n_units] float64; NaN for units inside subgraphs (their tensors cannot be read). The values mean
    removal (`--removal mean`) puts in place of a removed unit."""
    model, layers = activation_model(inst)
    session = inst.session_for(model, optimize=True).session
    masks = {layer.mask_input for layer in inst.units.layers}
    feeds = prepare_inputs(session, inputs, masks)
    n = len(next(iter(feeds.values())))
    ones = inst.evaluator.masks_for(np.ones((1, inst.n_units), bool))
    sums = np.zeros(inst.n_units)
    names = [layer.masked_tensor for layer in layers]
    for start in range(0, n, batch):
        chunk = {k: v[start : start + batch] for k, v in feeds.items()}
        outs = run_session(session, names, {**chunk, **ones})
        for layer, act in zip(layers, outs, strict=True):
            axis = layer.channel_axis % act.ndim
            per_channel = np.moveaxis(act.astype(np.float64), axis, -1).reshape(-1, layer.channels)
            sums[layer.offset : layer.offset + layer.channels] += per_channel.sum(axis=0) / (
                per_channel.shape[0] / len(act)
            )
    result = sums / n
    inside = np.ones(inst.n_units, bool)
    for layer in layers:
        inside[layer.offset : layer.offset + layer.channels] = False
    result[inside] = np.nan
    return result
