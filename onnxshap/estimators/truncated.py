"""Truncated Monte-Carlo permutation sampling (the walk Neuron Shapley uses)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from onnxshap.estimators.permutation import SamplingEstimator
from onnxshap.games.base import Game


def resolve_value_range(
    param: float | None, game: Game, v_all: np.ndarray, v_empty: np.ndarray
) -> tuple[float, str]:
    """R from the parameter, else the game's ``value_range``, else max |v(all) - v(empty)|."""
    if param is not None:
        return float(param), "parameter"
    if game.value_range is not None:
        return float(game.value_range), "game"
    return float(np.max(np.abs(np.asarray(v_all) - np.asarray(v_empty)))), "|v_all - v_empty|"


class TruncatedEstimator(SamplingEstimator):
    """Permutation sampling whose walks stop once the value has settled near v(empty).

    Each walk removes players from the full set, checks the value after every ``check_every``-th
    removal, and stops after ``patience`` consecutive checks within ``tolerance`` x max |v(all) -
    v(empty)| of v(empty) (max over elements for vector games); the players it did not reach get
    marginal 0, counted as a sample (Neuron Shapley: tolerance 0.2 of the chance level's distance,
    patience 6 removals; we use the game's own v(empty) and measure the tolerance against the value's
    own swing |v(all) - v(empty)|, not against R: on a game whose swing is a small part of R, such as a
    fairness gap, a threshold of 0.2 R would cut every walk at once). Truncation trades a bias (the
    marginals it sets to 0 are small only if the game stays near v(empty) below that point) for
    shorter walks; the Student-t intervals (level 1 - ``delta``, a CLT heuristic) are about the
    truncated estimator's mean, which equals the Shapley value when the skipped marginals are exactly 0.
    R (``value_range``, else the game's, else max |v(all) - v(empty)|) is reported, not used.
    """

    name = "truncated"
    defaults: ClassVar[dict[str, Any]] = {
        **SamplingEstimator.defaults,
        "tolerance": 0.2,
        "patience": 6,
        "check_every": 1,
        "value_range": None,
    }

    def start(self) -> None:
        """Compute v(all), v(empty) and the value range R."""
        super().start()
        self.value_range, self.value_range_source = resolve_value_range(
            self.params["value_range"], self.game, self.v_all, self.v_empty
        )

    def truncation_threshold(self) -> float | None:
        """tolerance x max |v(all) - v(empty)| (None when ``tolerance`` is None: no truncation)."""
        tol = self.params["tolerance"]
        return None if tol is None else tol * float(np.max(np.abs(self.v_all - self.v_empty)))

    def extra_metadata(self) -> dict[str, Any]:
        """Range and truncation threshold used."""
        return {
            **super().extra_metadata(),
            "value_range": self.value_range,
            "value_range_source": self.value_range_source,
            "truncation_threshold": self.truncation_threshold(),
        }
