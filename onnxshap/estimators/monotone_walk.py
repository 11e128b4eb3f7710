"""Walks on a monotone game that skip flat stretches: galloping and bisection along the removal chain.

Along a walk the coalitions shrink, C_0 = all ⊃ C_1 ⊃ ... ⊃ C_n = empty, so on a monotone game (adding
a player never lowers any value) the values never rise along the chain: when v(C_a) equals v(C_b),
every value between them is equal too and every marginal there is exactly 0, with no evaluation. A
walk therefore probes ahead at doubling steps while the value stays put and bisects a stretch whose
ends differ, until it knows the value of every coalition the linear walk would have evaluated. The
values, the truncation point and hence the marginals are the linear walk's; only the evaluations
differ (fewer where the value is flat: the top of a walk before anything is lost, the units that
carry nothing, the tail after a collapse). Not used for games that do not state ``monotone``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class SkippingPlan:
    """One permutation's walk over its needed coalitions ``at`` (sizes removed, ascending).

    :meth:`next_probe` names the index into ``at`` to evaluate next (None: the walk is done);
    :meth:`feed` hands its value back. ``values[j]`` (the caller's row) is known for every ``j <= left``;
    ``cut`` is the linear walk's truncation point (coalition size removed; ``n`` when it does not
    truncate): ``patience`` consecutive checks, one every ``check_every`` removals, that ``is_near``
    v(empty).
    """

    def __init__(
        self,
        at: np.ndarray,
        v_top: np.ndarray,
        values: np.ndarray,
        n: int,
        is_near: Callable[[np.ndarray], bool] | None,
        patience: int,
        check_every: int,
    ) -> None:
        self.at, self.m, self.values = at, len(at), values
        self.left, self.left_value = -1, v_top
        self.probes: dict[int, np.ndarray] = {}
        self.step = 1
        self.is_near, self.patience, self.check_every = is_near, patience, check_every
        self.streak = 0
        self.cut = n
        self.done = self.m == 0

    def next_probe(self) -> int | None:
        """The next index to evaluate, advancing over what is already known."""
        while not self.done:
            if not self.probes:
                return min(self.left + self.step, self.m - 1)
            right = min(self.probes)
            value = self.probes[right]
            if right == self.left + 1 or np.array_equal(value, self.left_value):
                del self.probes[right]
                self._advance(right, value)
                continue
            return (self.left + right) // 2
        return None

    def feed(self, index: int, value: np.ndarray) -> None:
        """Record the value at ``index``; a probe ahead that found the value unchanged doubles the step."""
        if not self.probes:  # a probe ahead, not a bisection
            self.step = self.step * 2 if np.array_equal(value, self.left_value) else 1
        self.probes[index] = value

    def _advance(self, right: int, value: np.ndarray) -> None:
        """Every coalition up to ``right`` has ``value``; the truncation checks among them (one value,
        so one nearness for all) move the streak."""
        span = slice(self.left + 1, right + 1)
        self.values[span] = value
        if self.is_near is not None:
            near = self.is_near(value)
            sizes = self.at[span]
            for c in sizes[sizes % self.check_every == 0]:
                self.streak = self.streak + 1 if near else 0
                if self.streak >= self.patience:
                    self.cut, self.done = int(c), True
                    return
        self.left, self.left_value = right, value
        if self.left >= self.m - 1:
            self.done = True


def walk_skipping(
    evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ranks: np.ndarray,
    needs: list[np.ndarray],
    v_full: np.ndarray,
    near: list[Callable[[np.ndarray], bool]] | None,
    patience: int,
    check_every: int,
    values: np.ndarray,
    cut: np.ndarray,
) -> int:
    """Walk every permutation in lock-step (one coalition per live walk and step, one ``evaluate(coal,
    rows)`` call per step), writing row r's values at ``needs[r]`` into ``values[r]`` and its truncation
    point into ``cut[r]`` (``near[r]``: its test for "near v(empty)"; None: no truncation). Returns the
    evaluations made."""
    p, n = ranks.shape
    plans = [
        SkippingPlan(needs[r], v_full[r], values[r], n, near[r] if near else None, patience, check_every)
        for r in range(p)
    ]
    evaluations = 0
    while True:
        rows, probes = [], []
        for r, plan in enumerate(plans):
            j = plan.next_probe()
            if j is not None:
                rows.append(r)
                probes.append(j)
        if not rows:
            cut[:] = [plan.cut for plan in plans]
            return evaluations
        q = np.asarray(rows)
        sizes = np.asarray([needs[r][j] for r, j in zip(rows, probes, strict=True)])
        vals = evaluate(ranks[q] >= sizes[:, None], q)
        evaluations += len(q)
        for i, (r, j) in enumerate(zip(rows, probes, strict=True)):
            plans[r].feed(j, vals[i])
