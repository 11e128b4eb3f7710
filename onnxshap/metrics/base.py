"""What a metric is: model outputs on a batch -> one value (or a vector) per coalition."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from onnxshap.errors import DataError


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

    def check_labels(self, labels: np.ndarray | None) -> np.ndarray:
        if labels is None:
            raise DataError(f"metric {self.name!r} needs labels; the data has none")
        return np.asarray(labels)


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
    """Labels must be integer classes of the model, one per item."""
    if labels.ndim != 1:
        raise DataError(
            f"labels must be one class per item, got shape {list(labels.shape)} (one-hot? save y.argmax(1); "
            "label sequences are for the ctc metrics)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integer classes, got {labels.dtype}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise DataError(
            f"label {int(labels[bad][0])} is not a class of this model (it outputs {num_classes} classes)"
        )
