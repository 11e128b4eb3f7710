"""Fairness games: the gap in accuracy between two groups, or one group's accuracy."""

from __future__ import annotations

import numpy as np

from onnxshap.errors import DataError
from onnxshap.metrics.base import ClassMetric, class_scores, default_item_name, predicted_classes


def group_accuracies(outputs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy per group for each coalition: {group: [m]}."""
    correct = predicted_classes(outputs) == labels[None, :]
    return {str(g): correct[:, groups == g].mean(axis=1) for g in np.unique(groups)}


def _check_groups(groups: np.ndarray | None, name: str) -> np.ndarray:
    """Group ids as strings [N] (how fairness metrics name groups); one line when missing or not 1-D."""
    if groups is None:
        raise DataError(
            f"metric {name!r} needs a group per item (a 'group' column or array); the data has none"
        )
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise DataError(
            f"metric {name!r} needs one group id per item; the groups have shape {list(groups.shape)}"
        )
    return groups.astype(str)


def _require_groups(present: np.ndarray, wanted: dict[str, str | None], name: str) -> None:
    """Each named group (role -> group id) must have items in `present`."""
    have = set(present.tolist())
    for role, group in wanted.items():
        if group is not None and group not in have:
            raise DataError(
                f"{name}: group {group!r}{role} is not in the data (groups: {', '.join(sorted(have))})"
            )


class GroupGap(ClassMetric):
    """Accuracy of the advantaged group minus that of the disadvantaged one.

    Which group is which is fixed from the full model on the valuation data (or given), so v(all) is the
    gap the audit is about; filters with a large positive value carry the bias, and removing them closes it.
    Both groups must have items in every batch the metric reads (drawn batches are stratified by group).
    """

    name = "fairness"
    reduction = "argmax"
    value_range = 1.0
    chance = 0.0
    batch_needs = ("groups",)

    def __init__(self, advantaged: str | None = None, disadvantaged: str | None = None):
        self.advantaged = advantaged
        self.disadvantaged = disadvantaged

    def check_data(self, labels, groups, output_shape, item_name=default_item_name) -> None:
        super().check_data(labels, groups, output_shape, item_name)
        present = _check_groups(groups, self.name)
        roles = {" (advantaged)": self.advantaged, " (disadvantaged)": self.disadvantaged}
        _require_groups(present, roles, self.name)  # once fixed (or given), both groups must be there
        if len(np.unique(present)) < 2:
            raise DataError("the fairness gap needs at least two groups in the data")

    def prepare(self, reference, labels, groups) -> None:
        y = self.check_labels(labels)
        groups = _check_groups(groups, self.name)
        accs = {g: float(a[0]) for g, a in group_accuracies(reference[None], y, groups).items()}
        ranked = sorted(accs, key=lambda g: accs[g])
        self.advantaged = self.advantaged or ranked[-1]
        self.disadvantaged = self.disadvantaged or ranked[0]

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        groups = _check_groups(groups, self.name)
        correct = predicted_classes(outputs) == y[None, :]
        accs = []
        for group in (self.advantaged, self.disadvantaged):
            mask = groups == group
            if not mask.any():  # an accuracy of no items is undefined: never guess a value for it
                raise DataError(f"{self.name}: the data batch has no item of group {group!r}")
            accs.append(correct[:, mask].mean(axis=1))
        return accs[0] - accs[1]

    def describe(self) -> str:
        return f"fairness gap: accuracy({self.advantaged}) - accuracy({self.disadvantaged})"


class GroupAccuracy(ClassMetric):
    """Top-1 accuracy on one group's items (drawn batches always hold some: they are stratified by group)."""

    value_range = 1.0
    reduction = "argmax"
    batch_needs = ("groups",)

    def __init__(self, group: str):
        self.group = str(group)
        self.name = f"fairness:{self.group}"

    def check_data(self, labels, groups, output_shape, item_name=default_item_name) -> None:
        super().check_data(labels, groups, output_shape, item_name)
        _require_groups(_check_groups(groups, self.name), {"": self.group}, self.name)

    def prepare(self, reference, labels, groups) -> None:
        self.chance = 1.0 / class_scores(reference[None]).shape[-1]

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        mask = _check_groups(groups, self.name) == self.group
        if not mask.any():
            raise DataError(f"{self.name}: the data batch has no item of group {self.group!r}")
        return (predicted_classes(outputs)[:, mask] == y[None, mask]).mean(axis=1)
