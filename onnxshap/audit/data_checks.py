"""The audit's data against its metric, before any work: labels of the model's classes, the groups it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from onnxshap.data import Dataset
from onnxshap.errors import DataError
from onnxshap.metrics import Metric

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel


def output_item_shape(inst: MaskedModel, data: Dataset, output: str | None = None) -> tuple[int, ...]:
    """Per-item shape of the model output the metric reads, from the full model on the data's first item(s)
    (as many as a fixed batch dimension asks for)."""
    outputs = inst.evaluator.output_names
    name = output or outputs[0]
    if name not in outputs:
        raise DataError(f"the model has no output {name!r} (outputs: {', '.join(outputs)})")
    batch = 1
    for meta in inst.input_metas():
        if meta.name in data.inputs and meta.shape and isinstance(meta.shape[0], int) and meta.shape[0] > 0:
            batch = meta.shape[0]
    feeds = {k: v[:batch] for k, v in data.inputs.items()}
    out = inst.evaluate(np.ones((1, inst.n_units), bool), feeds, outputs=[name])[name]
    return tuple(int(d) for d in out.shape[2:])


def check_audit_data(metric: Metric, data: Dataset, output_shape: tuple[int, ...]) -> None:
    """One line naming the data and the first bad item unless `data` suits `metric` (see Metric.check_data)."""
    try:
        metric.check_data(data.labels, data.groups, output_shape, data.item_name)
    except DataError as exc:
        where = f"{data.source}: " if data.source else ""
        raise DataError(f"{where}{exc}") from None
