"""Top-k decisions from confidence intervals: which units are certainly in the top k, certainly out.

Decisions are +1 (certainly in the top k), -1 (certainly out) or 0 (undecided). "Certainly" holds on the
event that every interval covers its unit's value (so with the intervals' joint level), up to the PAC
tolerance ``epsilon``: a +1 unit's value is at least the k-th largest value minus epsilon, a -1 unit's at
most the (k+1)-th largest plus epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IN, OUT, UNDECIDED = 1, -1, 0


@dataclass
class TopKState:
    """Decisions per unit, the selected k (best first), and whether the stop rule fired."""

    decision: np.ndarray  # int8 [n]
    selected: np.ndarray  # intp [k]
    converged: bool


def _count_above(sorted_values: np.ndarray, threshold: np.ndarray, strict: bool) -> np.ndarray:
    """How many entries of the (ascending) array are > threshold (strict) or >= threshold."""
    side = "right" if strict else "left"
    return len(sorted_values) - np.searchsorted(sorted_values, threshold, side=side)


def selection_order(mean: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """All units, decided-in first, then undecided, then decided-out, each by mean descending.

    Decided units stop being sampled, so an undecided unit's mean may drift above a decided-in unit's
    (within epsilon, or within its own wide interval): the decided unit keeps its place.
    """
    return np.lexsort((np.arange(len(mean)), -mean, -decision.astype(np.int64)))


def lucb_decisions(
    mean: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    epsilon: float = 0.0,
    previous: np.ndarray | None = None,
) -> TopKState:
    """LUCB-style top-k decisions (Kalyanakrishnan et al. 2012) from simultaneous intervals [lo, hi].

    * +1: fewer than k other units can lie above it: #{j != i : hi_j > lo_i + epsilon} < k.
    * -1: at least k other units lie certainly above it: #{j != i : lo_j >= hi_i - epsilon} >= k.
    * A unit meeting both (possible only within epsilon of the boundary) goes with the selection.
    * The selection: the k first units of :func:`selection_order`. Stop ("converged") when
      min lo over the selection >= max hi over the rest - epsilon; every unit is then decided.

    Earlier decisions (``previous``) are kept: with running-intersection intervals they hold anyway.
    """
    n = len(mean)
    sorted_hi, sorted_lo = np.sort(hi), np.sort(lo)
    above_in = _count_above(sorted_hi, lo + epsilon, strict=True) - (hi > lo + epsilon)
    above_out = _count_above(sorted_lo, hi - epsilon, strict=False) - (lo >= hi - epsilon)
    can_in, can_out = above_in < k, above_out >= k
    decision = np.zeros(n, dtype=np.int8) if previous is None else previous.astype(np.int8, copy=True)
    fresh = decision == UNDECIDED
    decision[fresh & can_in & ~can_out] = IN
    decision[fresh & can_out & ~can_in] = OUT
    order = selection_order(mean, decision)
    selected, rest = order[:k], order[k:]
    both = fresh & can_in & can_out
    if both.any():
        in_selection = np.zeros(n, dtype=bool)
        in_selection[selected] = True
        decision[both] = np.where(in_selection[both], IN, OUT)
    converged = k >= n or bool(lo[selected].min() >= hi[rest].max() - epsilon)
    if converged:
        decision[selected] = IN
        decision[rest] = OUT
    return TopKState(decision=decision, selected=selected, converged=converged)


def threshold_decisions(
    mean: np.ndarray, radius: np.ndarray, counts: np.ndarray, k: int, epsilon: float, min_samples: int
) -> tuple[TopKState, float, int, np.ndarray]:
    """The original Neuron Shapley rule: tau = the (k+1)-th largest mean; a unit stays active while its
    interval mean ± radius contains tau (within epsilon) or it has fewer than ``min_samples`` samples;
    stop when no unit but tau's own is active. Inactive units above tau are +1, below -1.

    Returns (state, tau, tau's unit, active mask).
    """
    order = np.argsort(-mean, kind="stable")
    tau_unit = int(order[k])
    tau = float(mean[tau_unit])
    with np.errstate(invalid="ignore"):
        contains = (mean - radius < tau - epsilon) & (mean + radius > tau + epsilon)
    active = (counts < min_samples) | contains
    others = active.copy()
    others[tau_unit] = False
    converged = not others.any()
    decision = np.zeros(len(mean), dtype=np.int8)
    decision[~active & (mean > tau)] = IN
    decision[~active & (mean <= tau)] = OUT
    if converged:
        decision[order[:k]] = IN
        decision[order[k:]] = OUT
    return TopKState(decision, order[:k], converged), tau, tau_unit, active
