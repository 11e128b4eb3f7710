"""Top-k decisions from intervals (LUCB) and the original threshold rule."""

from __future__ import annotations

import numpy as np

from onnxshap.estimators.topk import lucb_decisions, threshold_decisions


def test_lucb_labels_certain_units_and_stops_only_when_the_boundary_separates() -> None:
    mean = np.array([0.9, 0.8, 0.5, 0.45, 0.1, 0.05])
    lo = np.array([0.85, 0.6, 0.3, 0.3, 0.0, 0.0])
    hi = np.array([0.95, 0.9, 0.7, 0.65, 0.2, 0.1])
    state = lucb_decisions(mean, lo, hi, k=2)
    # unit 0: only unit 1 can be above it (hi 0.9 > 0.85): 1 < k -> in. Units 4, 5: units 0 and 1
    # are certainly above (lo >= their hi): out. Units 1, 2, 3 overlap the boundary.
    assert state.decision.tolist() == [1, 0, 0, 0, -1, -1]
    assert state.selected.tolist() == [0, 1] and not state.converged
    # the boundary separates: stop, the selection in, the rest out
    lo2 = lo.copy()
    lo2[1] = 0.71
    done = lucb_decisions(mean, lo2, hi, k=2)
    assert done.converged and done.decision.tolist() == [1, 1, -1, -1, -1, -1]
    # epsilon tolerates an overlap of up to epsilon
    assert lucb_decisions(mean, lo, hi, k=2, epsilon=0.11).converged
    assert not lucb_decisions(mean, lo, hi, k=2, epsilon=0.09).converged


def test_decisions_are_kept_and_decided_units_keep_their_place() -> None:
    mean = np.array([0.5, 0.6, 0.2])
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])
    previous = np.array([1, 0, -1], dtype=np.int8)
    state = lucb_decisions(mean, lo, hi, k=1, previous=previous)
    assert state.decision.tolist() == [1, 0, -1]
    assert state.selected.tolist() == [0]  # decided in, though unit 1's mean drifted above it


def test_threshold_rule_is_the_original() -> None:
    mean = np.array([0.9, 0.5, 0.4, 0.1])
    radius = np.array([0.05, 0.2, 0.05, 0.05])
    counts = np.array([10, 10, 10, 10])
    state, tau, tau_unit, active = threshold_decisions(mean, radius, counts, k=2, epsilon=0.0, min_samples=2)
    assert tau == 0.4 and tau_unit == 2
    assert active.tolist() == [False, True, True, False] and not state.converged
    assert state.decision.tolist() == [1, 0, 0, -1]
    state, *_ = threshold_decisions(mean, np.full(4, 0.01), counts, k=2, epsilon=0.0, min_samples=2)
    assert state.converged and state.decision.tolist() == [1, 1, -1, -1]
