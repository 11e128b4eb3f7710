"""Fairness games: the gap in accuracy between two groups, or one group's accuracy."""

from __future__ import annotations

import numpy as np

from onnxshap.errors import DataError
from onnxshap.metrics.base import Metric, check_label_range, class_scores, predicted_classes


def group_accuracies(outputs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy per group for each coalition: {group: [m]}."""
    correct = predicted_classes(outputs) == labels[None, :]
    return {str(g): correct[:, groups == g].mean(axis=1) for g in np.unique(groups)}


def _check_groups(groups: np.ndarray | None, name: str) -> np.ndarray:
    if groups is None:
        raise DataError(
            f"metric {name!r} needs a group per item (a 'group' column or array); the data has none"
        )
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2 and name == "fairness":
        raise DataError("the fairness gap needs at least two groups in the data")
    return groups


class GroupGap(Metric):
    """Accuracy of the advantaged group minus that of the disadvantaged one.

    Which group is which is fixed from the full model on the valuation data (or given), so v(all) is the
    gap the audit is about; filters with a large positive value carry the bias, and removing them closes it.
    """

    name = "fairness"
    reduction = "argmax"
    value_range = 1.0
    chance = 0.0

    def __init__(self, advantaged: str | None = None, disadvantaged: str | None = None):
        self.advantaged = advantaged
        self.disadvantaged = disadvantaged

    def prepare(self, reference, labels, groups) -> None:
        y = self.check_labels(labels)
        groups = _check_groups(groups, self.name)
        check_label_range(y, class_scores(reference[None]).shape[-1])
        accs = {g: float(a[0]) for g, a in group_accuracies(reference[None], y, groups).items()}
        for given in (self.advantaged, self.disadvantaged):
            if given is not None and given not in accs:
                raise DataError(f"group {given!r} is not in the data (groups: {', '.join(sorted(accs))})")
        ranked = sorted(accs, key=lambda g: accs[g])
        self.advantaged = self.advantaged or ranked[-1]
        self.disadvantaged = self.disadvantaged or ranked[0]

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        groups = np.asarray(_check_groups(groups, self.name)).astype(str)
        correct = predicted_classes(outputs) == y[None, :]
        hi, lo = groups == self.advantaged, groups == self.disadvantaged
        # A data batch may miss a group entirely: its accuracy is then undefined; count it as 0 gap there.
        acc_hi = correct[:, hi].mean(axis=1) if hi.any() else np.zeros(len(correct))
        acc_lo = correct[:, lo].mean(axis=1) if lo.any() else acc_hi
        return acc_hi - acc_lo

    def describe(self) -> str:
        return f"fairness gap: accuracy({self.advantaged}) - accuracy({self.disadvantaged})"


class GroupAccuracy(Metric):
    """Top-1 accuracy on one group's items."""

    value_range = 1.0
    reduction = "argmax"

    def __init__(self, group: str):
        self.group = str(group)
        self.name = f"fairness:{self.group}"

    def prepare(self, reference, labels, groups) -> None:
        groups = _check_groups(groups, self.name).astype(str)
        if self.group not in set(groups.tolist()):
            raise DataError(
                f"group {self.group!r} is not in the data (groups: {', '.join(sorted(set(groups)))})"
            )
        self.chance = 1.0 / class_scores(reference[None]).shape[-1]

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        mask = np.asarray(_check_groups(groups, self.name)).astype(str) == self.group
        if not mask.any():
            return np.full(len(outputs), np.nan)
        return (predicted_classes(outputs)[:, mask] == y[None, mask]).mean(axis=1)
