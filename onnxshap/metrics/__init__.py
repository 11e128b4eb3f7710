"""Value functions: turn a masked model's outputs on a data batch into the game's value."""

from __future__ import annotations

import re

from onnxshap.errors import DataError
from onnxshap.metrics.adversarial import AttackSuccess, RobustAccuracy
from onnxshap.metrics.base import Metric
from onnxshap.metrics.classification import Accuracy, LogProbability, OneVsRest, TrueLogit
from onnxshap.metrics.ctc import SequenceCharSimilarity, SequenceExactMatch
from onnxshap.metrics.custom import CustomMetric, load_callable
from onnxshap.metrics.fairness import GroupAccuracy, GroupGap, group_accuracies
from onnxshap.metrics.modes import MeanOutput, PerClassAccuracy, PerGroupAccuracy, PooledOutputMap

METRIC_NAMES = (
    "accuracy", "loss", "logit", "class:C", "fairness", "fairness:GROUP", "adversarial", "robustness",
    "per-class", "per-group", "mean-output", "output-map:HxW", "ctc", "ctc-chars", "custom:MODULE:FUNCTION",
)  # fmt: skip


def get_metric(spec: str) -> Metric:
    """A metric from its name: accuracy, loss, logit, class:3, fairness, fairness:<group>, adversarial,
    robustness, per-class, mean-output, output-map:4x4, ctc, ctc-chars, custom:pkg.module:function (or
    custom:file.py:function)."""
    text = spec.strip()
    simple = {
        "accuracy": Accuracy,
        "loss": LogProbability,
        "logit": TrueLogit,
        "fairness": GroupGap,
        "adversarial": AttackSuccess,
        "robustness": RobustAccuracy,
        "per-class": PerClassAccuracy,
        "per-group": PerGroupAccuracy,
        "mean-output": MeanOutput,
        "ctc": SequenceExactMatch,
        "ctc-chars": SequenceCharSimilarity,
    }
    if text in simple:
        return simple[text]()
    if m := re.fullmatch(r"class:(\d+)", text):
        return OneVsRest(int(m.group(1)))
    if text.startswith("fairness:") and len(text) > len("fairness:"):
        return GroupAccuracy(text.split(":", 1)[1])
    if m := re.fullmatch(r"output-map:(\d+(?:x\d+)*)", text):
        return PooledOutputMap(tuple(int(v) for v in m.group(1).split("x")))
    if text.startswith("custom:"):
        return CustomMetric(load_callable(text[len("custom:") :]), name=text)
    raise DataError(f"unknown metric {spec!r}; choose from {', '.join(METRIC_NAMES)}")


__all__ = [
    "METRIC_NAMES", "Accuracy", "AttackSuccess", "CustomMetric", "GroupAccuracy", "GroupGap", "LogProbability",
    "MeanOutput", "Metric", "OneVsRest", "PerClassAccuracy", "PerGroupAccuracy", "PooledOutputMap",
    "SequenceCharSimilarity", "SequenceExactMatch", "TrueLogit", "get_metric", "group_accuracies",
]  # fmt: skip
