"""Focused position strata: precise values for a few contenders of a scalar game.

A unit's Shapley value is (1/n) sum_p m_i(p), where m_i(p) = E[v(N - R) - v(N - R - i)] over removed
sets R of size p drawn uniformly from the other units (p is the unit's removal position in a uniform
walk). On networks that collapse after a few dozen removals, almost all of it sits at small p, where a
walk over thousands of units puts a given unit only a few times. Here the positions are split into
three parts, each estimated without bias:

* p = 0: the leave-one-out value L_i, computed exactly (weight 1/n);
* 1 <= p < depth: equal-width strata; a *draw* picks a stratum in turn, p uniformly inside it and a
  uniformly random R of size p, evaluates v(N - R) once and v(N - R - i) for every contender i outside R
  (1 + C evaluations for C samples of m_i(p), one per contender); per stratum the mean marginal times
  the stratum's width / n;
* p >= depth: the walks' own marginals at those positions (their sum over samples / samples).

The contenders are a heuristic choice (the top by leave-one-out and by the current estimate), and the
draws are not truncated while the walks' tail is, so the focused values are labelled a heuristic; the
confidence sequences and certain decisions stay on the walks' raw marginals.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from onnxshap.estimators.stats import restore_arrays
from onnxshap.estimators.walk import removal_positions
from onnxshap.games.base import Game

STRATA = 8
MAX_DRAWS_PER_STEP = 16


def default_depth(n: int) -> int:
    """Positions the strata cover (1 .. depth - 1): n / 8, at least 2, at most n."""
    return min(n, max(2, n // 8))


class TailSums:
    """Per unit: the sum over samples of the marginal at removal positions >= depth (a group of u walks
    forming one sample adds each walk's marginal / u). Merges like :class:`RunningMoments`."""

    def __init__(self, n: int, depth: int) -> None:
        self.n, self.depth = int(n), int(depth)
        self.sum_x = np.zeros(self.n)

    def add(self, orders: np.ndarray, marginals: np.ndarray, mask: np.ndarray) -> None:
        """One sample: the walks of a group (orders and scalar marginals [u, n]) and the units it samples."""
        u = len(orders)
        for order, x in zip(orders, marginals, strict=True):
            sel = mask & (removal_positions(order) >= self.depth)
            self.sum_x[sel] += x[sel] / u

    def merge(self, other: TailSums) -> None:
        """Add another chunk's sums."""
        self.sum_x += other.sum_x

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays to checkpoint, keys prefixed."""
        return {f"{prefix}sum_x": self.sum_x}

    def load(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        """Restore what :meth:`state` saved."""
        restore_arrays(self, arrays, prefix, ("sum_x",))


class FocusStrata:
    """Per unit and stratum of removal positions 1 .. depth - 1: count, sum and sum of squares of the
    marginals the draws gave; ``draws`` says how many draws were made (draw d uses stratum d mod S)."""

    def __init__(self, n: int, depth: int, strata: int = STRATA, edges: np.ndarray | None = None) -> None:
        """``strata`` equal-width strata over positions 1 .. depth - 1, or the given ``edges`` (ascending,
        from 1 to depth)."""
        if not 2 <= depth <= n:
            raise ValueError(f"depth must lie in [2, {n}], got {depth}")
        self.n, self.depth = int(n), int(depth)
        if edges is None:
            edges = np.linspace(1, self.depth, min(strata, self.depth - 1) + 1).astype(np.int64)
        self.edges = np.unique(np.asarray(edges, dtype=np.int64))
        if self.edges[0] != 1 or self.edges[-1] != self.depth:
            raise ValueError(f"strata edges must run from 1 to depth {self.depth}")
        shape = (self.n, len(self.edges) - 1)
        self.count = np.zeros(shape, dtype=np.int64)
        self.sum_x = np.zeros(shape)
        self.sum_x2 = np.zeros(shape)
        self.draws = 0

    @property
    def widths(self) -> np.ndarray:
        """Positions per stratum."""
        return np.diff(self.edges).astype(np.float64)

    def run(
        self, game: Game, contenders: np.ndarray, seed: int, draws: int, images: int | None = None
    ) -> int:
        """Make ``draws`` more draws for ``contenders``; returns the evaluations they cost. Draw d takes
        its position, removed set (and data batch, with ``images``) from ``default_rng([seed, d, 1])``,
        so the state depends only on the seed, the draws made and the contenders of each."""
        n, strata = self.n, len(self.edges) - 1
        plans = []
        for d in range(self.draws, self.draws + draws):
            rng = np.random.default_rng([seed, d, 1])
            s = d % strata
            p = int(rng.integers(self.edges[s], self.edges[s + 1]))
            keep = np.ones(n, dtype=np.bool_)
            keep[rng.choice(n, size=p, replace=False)] = False
            live = contenders[keep[contenders]]
            sub = game if images is None else game.subgame(rng, images)
            coal = np.repeat(keep[None, :], len(live) + 1, axis=0)
            coal[np.arange(1, len(live) + 1), live] = False
            plans.append((s, live, sub, coal))
        evaluations = 0
        if images is None:  # one game call for every draw of the step
            values = np.asarray(game(np.concatenate([c for *_, c in plans])), dtype=np.float64)
            bounds = np.cumsum([0] + [len(c) for *_, c in plans])
            results = [values[a:b] for a, b in pairwise(bounds)]
        else:
            results = [np.asarray(sub(coal), dtype=np.float64) for _, _, sub, coal in plans]
        for (s, live, _, coal), v in zip(plans, results, strict=True):
            x = v[0] - v[1:]
            self.count[live, s] += 1
            self.sum_x[live, s] += x
            self.sum_x2[live, s] += x * x
            evaluations += len(coal)
        self.draws += draws
        return evaluations

    def focused(self) -> np.ndarray:
        """Units with at least one draw in every stratum."""
        return (self.count > 0).all(axis=1)

    def estimate(self, loo: np.ndarray, tail: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, standard errors): L_i / n + sum_s width_s mean_s / n + tail_i for focused units,
        ``base`` and NaN elsewhere. The standard error covers the strata only (a heuristic)."""
        done = self.focused()
        cnt = np.maximum(self.count, 1)
        mean = self.sum_x / cnt
        var = np.maximum(self.sum_x2 - cnt * mean**2, 0.0) / np.maximum(self.count - 1, 1) / cnt
        w = self.widths / self.n
        values = np.where(done, loo / self.n + mean @ w + tail, base)
        stderr = np.where(done, np.sqrt(var @ (w**2)), np.nan)
        return values, stderr

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays to checkpoint, keys prefixed."""
        return {
            f"{prefix}count": self.count,
            f"{prefix}sum_x": self.sum_x,
            f"{prefix}sum_x2": self.sum_x2,
            f"{prefix}draws": np.asarray(self.draws, dtype=np.int64),
        }

    def load(self, arrays: dict[str, Any], prefix: str) -> None:
        """Restore what :meth:`state` saved."""
        restore_arrays(self, arrays, prefix, ("count", "sum_x", "sum_x2"))
        self.draws = int(np.asarray(arrays[f"{prefix}draws"]))
