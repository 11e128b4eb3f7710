"""Vector-valued games ("Shapley modes", after MSA): each unit gets a contribution map shaped like an output."""

from __future__ import annotations

import numpy as np

from onnxshap.errors import DataError
from onnxshap.metrics.base import ClassMetric, Metric, class_scores, predicted_classes


class PerClassAccuracy(ClassMetric):
    """Accuracy (recall) of each class: a vector [K] per coalition."""

    name = "per-class"
    reduction = "argmax"
    value_range = 1.0
    batch_needs = ("labels",)

    def prepare(self, reference, labels, groups) -> None:
        classes = class_scores(reference[None]).shape[-1]
        self.classes = classes
        self.value_shape = (classes,)
        self.chance = 1.0 / classes

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        correct = predicted_classes(outputs) == y[None, :]
        out = np.zeros((len(outputs), self.classes))
        for c in range(self.classes):
            sel = y == c
            # A class with no item has no recall: 0, a constant (so its modes are 0). Drawn batches hold every
            # class of the data they are drawn from, so this only happens for classes absent from the data.
            out[:, c] = correct[:, sel].mean(axis=1) if sel.any() else 0.0
        return out


class MeanOutput(Metric):
    """The mean output over the batch: a vector shaped like one item's output (e.g. the logit vector)."""

    name = "mean-output"
    value_range = None
    needs_labels = False
    reduction = "mean-items"

    def prepare(self, reference, labels, groups) -> None:
        self.value_shape = tuple(reference.shape[1:])

    def __call__(self, outputs, labels, groups):
        return outputs.astype(np.float64).mean(axis=1)

    def from_reduced(self, reduced, labels, groups):
        return reduced.astype(np.float64)


def adaptive_pool(maps: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Average-pool the trailing len(size) axes of `maps` down to `size` (bins as in adaptive pooling)."""
    out = maps
    lead = maps.ndim - len(size)
    for i, target in enumerate(size):
        axis = lead + i
        length = out.shape[axis]
        if target > length:
            raise DataError(f"cannot pool an axis of {length} to {target}")
        edges = [(k * length) // target for k in range(target)] + [length]
        parts = [
            out.take(range(edges[k], max(edges[k + 1], edges[k] + 1)), axis=axis).mean(
                axis=axis, keepdims=True
            )
            for k in range(target)
        ]
        out = np.concatenate(parts, axis=axis)
    return out


class PooledOutputMap(Metric):
    """The raw output map (e.g. a detector's probability map) averaged over the batch and pooled to a size."""

    value_range = None
    needs_labels = False
    reduction = "mean-items"

    def __init__(self, size: tuple[int, ...]):
        self.size = tuple(int(s) for s in size)
        self.name = "output-map:" + "x".join(map(str, self.size))

    def prepare(self, reference, labels, groups) -> None:
        item = reference.shape[1:]
        if len(item) < len(self.size):
            raise DataError(
                f"{self.name}: the output has per-item shape {list(item)}, fewer axes than the size"
            )
        pooled = adaptive_pool(reference.astype(np.float64).mean(axis=0), self.size)
        self.value_shape = tuple(pooled.shape)

    def __call__(self, outputs, labels, groups):
        mean = outputs.astype(np.float64).mean(axis=1)
        return adaptive_pool(mean, self.size)

    def from_reduced(self, reduced, labels, groups):
        return adaptive_pool(reduced.astype(np.float64), self.size)


class PerGroupAccuracy(Metric):
    """Accuracy of each data group (e.g. each input domain): a vector [G] per coalition, groups in sorted
    order as found in the valuation data ("per-domain modes")."""

    name = "per-group"
    reduction = "argmax"
    value_range = 1.0

    def prepare(self, reference, labels, groups) -> None:
        if groups is None:
            raise DataError("metric 'per-group' needs a group per item (a 'group' column or array)")
        self.check_labels(labels)
        self.group_names = [str(g) for g in np.unique(groups)]
        self.value_shape = (len(self.group_names),)

    def element_names(self) -> list[str] | None:
        """The groups as the data names them (sorted), e.g. the domains of a mixture of experts; numeric
        group ids read "group 0", "group 1", ..."""
        return [f"group {g}" if g.lstrip("-").isdigit() else g for g in self.group_names]

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        correct = predicted_classes(outputs) == y[None, :]
        names = np.asarray(groups).astype(str)
        out = np.zeros((len(outputs), len(self.group_names)))
        for k, g in enumerate(self.group_names):
            sel = names == g
            out[:, k] = correct[:, sel].mean(axis=1) if sel.any() else 0.0  # a batch without the group
        return out
