"""Adversarial vulnerability: the success rate of fixed adversarial examples against the masked network."""

from __future__ import annotations

import numpy as np

from onnxshap.metrics.base import ClassMetric, class_scores, predicted_classes


class AttackSuccess(ClassMetric):
    """Share of adversarial examples that fool the network (untargeted: prediction != true label;
    targeted: prediction == target). The game's data are the adversarial examples themselves, so filters
    with a large value are the ones the attack exploits; removing them lowers the success rate."""

    name = "adversarial"
    reduction = "argmax"
    value_range = 1.0

    def __init__(self, targets: np.ndarray | None = None):
        self.targets = None if targets is None else np.asarray(targets)

    def prepare(self, reference, labels, groups) -> None:
        classes = class_scores(reference[None]).shape[-1]
        self.chance = 1.0 / classes if self.targets is not None else 1.0 - 1.0 / classes

    def __call__(self, outputs, labels, groups):
        pred = predicted_classes(outputs)
        if self.targets is not None:
            return (pred == self.targets[None, :]).mean(axis=1)
        return (pred != self.check_labels(labels)[None, :]).mean(axis=1)

    def describe(self) -> str:
        kind = "targeted" if self.targets is not None else "untargeted"
        return f"adversarial ({kind} attack success rate)"


class RobustAccuracy(AttackSuccess):
    """Accuracy on the adversarial examples (1 - untargeted success): higher is better, so the units with
    reliably negative values are the ones the attack exploits, and `prune --negative` is the repair."""

    name = "robustness"

    def prepare(self, reference, labels, groups) -> None:
        super().prepare(reference, labels, groups)
        self.chance = 1.0 - float(self.chance)

    def __call__(self, outputs, labels, groups):
        return 1.0 - super().__call__(outputs, labels, groups)

    def describe(self) -> str:
        return "robustness (accuracy on adversarial examples)"
