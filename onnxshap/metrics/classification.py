"""Neuron Shapley's metrics: top-1 accuracy, mean log-probability of the true class, true-class logit,
one-vs-rest accuracy for one class."""

from __future__ import annotations

import numpy as np

from onnxshap.errors import DataError
from onnxshap.metrics.base import ClassMetric, class_scores, default_item_name, num_classes, predicted_classes

MIN_PROBABILITY = 1e-4  # log-probabilities are clipped here so the loss game has a finite range


def log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def looks_like_probabilities(scores: np.ndarray) -> bool:
    """Rows in [0, 1] that sum to 1: the model already ends in a softmax."""
    if scores.size == 0 or scores.min() < 0 or scores.max() > 1:
        return False
    return bool(np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))


class Accuracy(ClassMetric):
    """Top-1 accuracy (the value game of Neuron Shapley's main experiments)."""

    name = "accuracy"
    reduction = "argmax"

    def __init__(self, num_classes: int | None = None):
        self.num_classes = num_classes
        self.chance = 1.0 / num_classes if num_classes else None

    def prepare(self, reference, labels, groups) -> None:
        scores = class_scores(reference[None])
        self.num_classes = scores.shape[-1]
        self.chance = 1.0 / self.num_classes

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        return (predicted_classes(outputs) == y[None, :]).mean(axis=1)


class LogProbability(ClassMetric):
    """Mean log-probability of the true class; logits or probabilities (decided on the full model's outputs)."""

    name = "loss"
    value_range = float(-np.log(MIN_PROBABILITY))

    def __init__(self) -> None:
        self.assumed: str | None = None

    def prepare(self, reference, labels, groups) -> None:
        scores = class_scores(reference[None])[0]
        self.assumed = "probabilities" if looks_like_probabilities(scores) else "logits"
        self.chance = float(np.log(1.0 / scores.shape[-1]))

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        scores = class_scores(outputs).astype(np.float64)
        if self.assumed is None:
            self.assumed = "probabilities" if looks_like_probabilities(scores[0]) else "logits"
        if self.assumed == "probabilities":
            logp = np.log(np.clip(scores, MIN_PROBABILITY, 1.0))
        else:
            logp = np.maximum(log_softmax(scores), np.log(MIN_PROBABILITY))
        picked = np.take_along_axis(logp, y[None, :, None].repeat(len(logp), 0), axis=-1)[..., 0]
        return picked.mean(axis=1)

    def describe(self) -> str:
        return f"loss (mean log-probability of the true class; outputs read as {self.assumed or 'undecided'})"


class TrueLogit(ClassMetric):
    """Mean logit of the true class; unbounded, so the estimators derive R from the observed values."""

    name = "logit"
    value_range = None

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        scores = class_scores(outputs).astype(np.float64)
        return np.take_along_axis(scores, y[None, :, None].repeat(len(scores), 0), axis=-1)[..., 0].mean(
            axis=1
        )


class OneVsRest(ClassMetric):
    """One-vs-rest accuracy for class c: an item is right when (predicted == c) equals (label == c)."""

    reduction = "argmax"

    def __init__(self, target: int):
        self.target = int(target)
        self.name = f"class:{self.target}"

    def check_data(self, labels, groups, output_shape, item_name=default_item_name) -> None:
        classes = num_classes(output_shape)
        if not 0 <= self.target < classes:
            raise DataError(f"class {self.target} is not a class of this model ({classes} classes)")
        super().check_data(labels, groups, output_shape, item_name)

    def prepare(self, reference, labels, groups) -> None:
        y = self.check_labels(labels)
        # With every unit removed the network predicts one constant class; if that is not c the value is
        # the share of items that are not c.
        self.chance = float(1.0 - np.mean(y == self.target))

    def __call__(self, outputs, labels, groups):
        y = self.check_labels(labels)
        pred = predicted_classes(outputs) == self.target
        return (pred == (y[None, :] == self.target)).mean(axis=1)
