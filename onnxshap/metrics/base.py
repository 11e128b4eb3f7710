"""What a metric is: model outputs on a batch -> one value (or a vector) per coalition."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from onnxshap.errors import DataError


def default_item_name(index: int) -> str:
    """How messages name an item when nothing better is known."""
    return f"item {index}"


class Metric(ABC):
    """Turns the outputs of stacked coalitions on one data batch into values.

    `__call__(outputs, labels, groups)` gets `outputs` shaped [m, N, ...] (m coalitions, N items) and
    returns [m] (scalar) or [m, *value_shape] (a vector game: "Shapley modes"). `value_range` is the width
    R of the interval values live in (None when unbounded: estimators then derive it), `chance` the value
    expected when every unit is removed (informational: truncation uses the measured v(empty)).
    """

    name: str = "metric"
    value_range: float | None = 1.0
    chance: float | None = None
    value_shape: tuple[int, ...] = ()
    needs_labels: bool = True
    # What the metric reads of the outputs, so a game may compute it inside the graph and copy out only
    # that: "argmax" (predicted classes [m, N]) or "mean-items" (the mean over items [m, *item shape]).
    reduction: str | None = None
    # What a value is undefined without: "labels" when a batch must hold every class of the data (per-class),
    # "groups" every group (fairness). Drawn batches always try to (onnxshap.data.strata); for these a batch
    # too small to hold one item of each is refused.
    batch_needs: tuple[str, ...] = ()

    def prepare(self, reference: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None) -> None:
        """Fix anything the metric learns from the full model's outputs [N, ...] (called once per game)."""
        return None

    @abstractmethod
    def __call__(
        self, outputs: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None
    ) -> np.ndarray:
        """Values for each coalition: outputs [m, N, ...] -> [m, *value_shape]."""

    def from_reduced(
        self, reduced: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None
    ) -> np.ndarray:
        """Values from outputs already reduced by `reduction` (argmax metrics accept classes directly)."""
        return self(reduced, labels, groups)

    def describe(self) -> str:
        """One line for logs and reports."""
        return self.name

    def element_names(self) -> list[str] | None:
        """Names of a vector game's elements, in order (e.g. the groups of per-group), for reports; None
        where the position is the name (pixels, classes)."""
        return None

    def check_labels(self, labels: np.ndarray | None) -> np.ndarray:
        if labels is None:
            raise DataError(f"metric {self.name!r} needs labels; the data has none")
        return np.asarray(labels)

    def check_data(
        self,
        labels: np.ndarray | None,
        groups: np.ndarray | None,
        output_shape: tuple[int, ...],
        item_name: Callable[[int], str] = default_item_name,
    ) -> None:
        """DataError (one line) unless `labels` and `groups` suit this metric on the model output it reads,
        whose items have shape `output_shape` (e.g. (10,) for 10 class scores).

        Called on all the data before any work (the audit probes the output shape with one item), again by a
        game on its valuation data before `prepare`, and on other data (the held-out split) after it, so a
        prepared metric may also check what it fixed (e.g. the two groups of a fairness gap). `item_name(i)`
        names item i in messages. Metrics that read other kinds of labels override it.
        """
        if self.needs_labels:
            self.check_labels(labels)


class ClassMetric(Metric):
    """A metric that reads one class id per item against a classification output [N, K] (or [N, K, 1, ...])."""

    def check_data(self, labels, groups, output_shape, item_name=default_item_name) -> None:
        check_class_labels(self.check_labels(labels), num_classes(output_shape), item_name)


def num_classes(output_shape: tuple[int, ...]) -> int:
    """K from the per-item shape of a classification output: (K,) or (K, 1, ...)."""
    shape = tuple(output_shape)
    if not shape or int(np.prod(shape[1:], dtype=np.int64)) != 1:
        raise DataError(
            f"a classification metric needs outputs [N, classes]; got per-item shape {list(shape)} "
            "(choose another output or metric)"
        )
    return int(shape[0])


def check_class_labels(
    labels: np.ndarray, classes: int, item_name: Callable[[int], str] = default_item_name
) -> None:
    """Labels must be one integer class id in [0, classes) per item: one line naming the first bad item."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(
            f"this metric reads one class id per item; the labels have shape {list(y.shape)} (one-hot? save "
            "y.argmax(1); label sequences are for the ctc metrics)"
        )
    if not (np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_):
        raise DataError(f"labels must be integer class ids, got {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        more = f"; {bad.size} labels are out of range" if bad.size > 1 else ""
        raise DataError(
            f"label {int(y[bad[0]])} of {item_name(int(bad[0]))} is not a class of this model "
            f"(its output has {classes} classes: 0..{classes - 1}){more}"
        )


def class_scores(outputs: np.ndarray) -> np.ndarray:
    """Classification scores [m, N, K] from outputs [m, N, K, 1, 1, ...] or [m, N, K]."""
    if outputs.ndim < 3:
        raise DataError(
            f"a classification metric needs outputs [N, classes]; got per-item shape {outputs.shape[2:]}"
        )
    trailing = outputs.shape[3:]
    if trailing and int(np.prod(trailing)) != 1:
        raise DataError(
            f"a classification metric needs outputs [N, classes]; got per-item shape {list(outputs.shape[2:])} "
            "(choose another output or metric)"
        )
    return outputs.reshape(outputs.shape[0], outputs.shape[1], outputs.shape[2])


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Predicted classes [m, N] from scores [m, N, K, ...], or from classes already taken in the graph."""
    if np.issubdtype(outputs.dtype, np.integer):
        return outputs.reshape(outputs.shape[0], outputs.shape[1])
    return class_scores(outputs).argmax(-1)


def check_label_range(labels: np.ndarray, num_classes: int) -> None:
    """Labels must be integer classes of the model (see `check_class_labels`)."""
    check_class_labels(labels, num_classes)
