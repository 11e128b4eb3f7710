"""Synthetic games with exactly known Shapley values, for tests and benchmarks.

Every game here evaluates each coalition independently of the others in the batch (sums in a fixed
order and integer arithmetic, no BLAS), so its values do not depend on ``batch_size`` down to the bit.
"""

from __future__ import annotations

import math

import numpy as np

from onnxshap.games.base import Game, GameError


def _weights_along_players(weights: np.ndarray, n_players: int, what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim < 1 or w.shape[0] != n_players:
        raise GameError(f"{what} must have shape [{n_players}, ...], got {w.shape}")
    if not np.isfinite(w).all():
        raise GameError(f"{what} must be finite")
    return w


def _masked_sum(mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_j mask[:, j] * weights[j]: bool [m, k] x [k, *shape] -> [m, *shape].

    Accumulated column by column in a fixed order, so every row's bits are independent of m (numpy's
    reductions pick their summation order from the array's shape).
    """
    out = np.zeros((mask.shape[0], *weights.shape[1:]))
    expand = (1,) * (weights.ndim - 1)
    for j in range(mask.shape[1]):
        out += mask[:, j].reshape(-1, *expand) * weights[j]
    return out


class AdditiveGame(Game):
    """v(S) = constant + sum of ``weights[i]`` over i in S. Shapley value of i: ``weights[i]``.

    ``weights`` has shape [n] (scalar game) or [n, *shape] (vector game).
    """

    def __init__(self, weights: np.ndarray, constant: float = 0.0, batch_size: int = 1024) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim < 1:
            raise GameError("weights must have at least one dimension (one entry per player)")
        self.weights = _weights_along_players(w, w.shape[0], "weights")
        self.constant = float(constant)
        span = float(np.abs(self.weights).sum(axis=0).max())
        super().__init__(
            w.shape[0], value_shape=w.shape[1:], batch_size=batch_size, value_range=span if span > 0 else None
        )

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self.constant + _masked_sum(coalitions, self.weights)

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values: the weights."""
        return self.weights.copy()


class InteractionGame(Game):
    """Additive game plus pairwise interactions.

    v(S) = constant + sum_{i in S} w_i + sum over pairs (i, j) with both i, j in S of w_ij. Each pair's
    weight is shared equally by its two players, so the Shapley value of i is w_i + sum_j w_ij / 2.
    """

    def __init__(
        self,
        weights: np.ndarray,
        pairs: np.ndarray,
        pair_weights: np.ndarray,
        constant: float = 0.0,
        batch_size: int = 1024,
    ) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim < 1:
            raise GameError("weights must have at least one dimension (one entry per player)")
        n = w.shape[0]
        pairs = np.asarray(pairs, dtype=np.intp).reshape(-1, 2)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= n or (pairs[:, 0] == pairs[:, 1]).any()):
            raise GameError("pairs must hold two distinct player indices in [0, n_players) per row")
        pw = np.asarray(pair_weights, dtype=np.float64)
        if pw.shape != (len(pairs), *w.shape[1:]):
            raise GameError(f"pair_weights must have shape {(len(pairs), *w.shape[1:])}, got {pw.shape}")
        self.weights = _weights_along_players(w, n, "weights")
        self.pairs, self.pair_weights, self.constant = pairs, pw, float(constant)
        span = float((np.abs(w).sum(axis=0) + np.abs(pw).sum(axis=0)).max())
        super().__init__(
            n, value_shape=w.shape[1:], batch_size=batch_size, value_range=span if span > 0 else None
        )

    @classmethod
    def random(
        cls, n_players: int, n_pairs: int, seed: int = 0, value_shape: tuple[int, ...] = ()
    ) -> InteractionGame:
        """A random instance: normal weights, ``n_pairs`` distinct random pairs with normal weights."""
        rng = np.random.default_rng(seed)
        all_pairs = np.array([(i, j) for i in range(n_players) for j in range(i + 1, n_players)])
        chosen = all_pairs[rng.choice(len(all_pairs), size=min(n_pairs, len(all_pairs)), replace=False)]
        w = rng.normal(size=(n_players, *value_shape))
        pw = rng.normal(size=(len(chosen), *value_shape))
        return cls(w, chosen, pw, constant=float(rng.normal()))

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        lin = _masked_sum(coalitions, self.weights)
        if not len(self.pairs):
            return self.constant + lin
        both = coalitions[:, self.pairs[:, 0]] & coalitions[:, self.pairs[:, 1]]
        return self.constant + lin + _masked_sum(both, self.pair_weights)

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values: own weight plus half of every pair weight the player is in."""
        phi = self.weights.copy()
        half = self.pair_weights / 2.0
        np.add.at(phi, self.pairs[:, 0], half)
        np.add.at(phi, self.pairs[:, 1], half)
        return phi


def _integer_weights(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights)
    if w.ndim != 1 or (not np.issubdtype(w.dtype, np.integer) and not np.array_equal(w, np.round(w))):
        raise GameError("voting weights must be a 1-D array of non-negative integers")
    w = w.astype(np.int64)
    if (w < 0).any():
        raise GameError("voting weights must be non-negative")
    return w


def _swing_probabilities(weights: np.ndarray, quotas: np.ndarray) -> dict[int, np.ndarray]:
    """For each distinct weight u: P(player of weight u is pivotal) per quota, in a random order.

    Player i (weight u) is pivotal for quota q when the players before it weigh w with q - u <= w < q.
    Its Shapley value in the game [w(S) >= q] is that probability under a uniformly random order: the
    coalition before i has a uniform size s in 0..n-1 and is a uniform subset of that size of the others.
    Subsets are counted by (size, weight) with a DP over the other players (O(n^2 W) per weight class).
    """
    n = len(weights)
    total = int(weights.sum())
    if n > 1000:
        raise GameError("exact values of voting games are computed for at most 1000 players")
    binom = np.array([math.comb(n - 1, s) for s in range(n)], dtype=np.float64)
    out: dict[int, np.ndarray] = {}
    for u in np.unique(weights):
        others = np.delete(weights, np.flatnonzero(weights == u)[0])
        w_tot = total - int(u)
        counts = np.zeros((n, w_tot + 1))
        counts[0, 0] = 1.0
        for k, x in enumerate(others):
            x = int(x)
            shifted = counts[0 : k + 1, : w_tot + 1 - x].copy()
            counts[1 : k + 2, x:] += shifted
        cum = np.cumsum(counts / binom[:, None], axis=1)  # P(weight <= w | size s)

        def at(level: np.ndarray, cum: np.ndarray = cum, w_tot: int = w_tot) -> np.ndarray:
            idx = np.clip(level, -1, w_tot)
            vals = cum[:, np.maximum(idx, 0)]
            return np.where(idx[None, :] < 0, 0.0, vals)

        q = np.asarray(quotas, dtype=np.int64)
        pivotal = at(q - 1) - at(q - int(u) - 1)  # [n sizes, n quotas]
        out[int(u)] = pivotal.mean(axis=0)  # the size is uniform on 0..n-1
    return out


class WeightedVotingGame(Game):
    """Weighted voting (majority) game: v(S) = low + (high - low) * [sum of weights in S >= quota].

    Weights are non-negative integers; exact Shapley values come from a subset-counting DP. Monotone
    when ``high >= low``.
    """

    def __init__(
        self, weights: np.ndarray, quota: int, low: float = 0.0, high: float = 1.0, batch_size: int = 1024
    ) -> None:
        self.weights = _integer_weights(weights)
        self.quota = int(quota)
        self.low, self.high = float(low), float(high)
        span = abs(self.high - self.low)
        super().__init__(len(self.weights), batch_size=batch_size, value_range=span if span > 0 else None)
        self.monotone = self.high >= self.low

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        totals = coalitions.astype(np.int64) @ self.weights  # integer arithmetic: exact
        return np.where(totals >= self.quota, self.high, self.low)

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values (Shapley-Shubik power index scaled by high - low)."""
        swing = _swing_probabilities(self.weights, np.array([self.quota]))
        return np.array([swing[int(u)][0] for u in self.weights]) * (self.high - self.low)


class FewHubsGame(Game):
    """An accuracy-like game where a few "hub" players carry most of the value.

    There are data items with a group (think: class) and an integer quota (think: difficulty). Item j is
    "correct" when the players present weigh at least its quota, with per-group integer weights
    ``weights[group_j]``. The value is ``chance + (1 - chance) * accuracy`` (mean over items), or the
    per-group accuracy vector when ``per_group`` (a vector game, like per-class accuracy "Shapley modes").
    Like a network losing filters, the value collapses to chance once enough weight is removed.

    :meth:`subgame` draws a random batch of items, which makes evaluations noisy the way a batch of
    validation images does; ``per_group`` games draw ``max(1, size // n_groups)`` items per group so that
    every group is represented. Shapley values are exact (a mean of weighted voting games). Monotone:
    weights are non-negative, so a player's presence never lowers the value.
    """

    monotone = True

    def __init__(
        self,
        weights: np.ndarray,
        quotas: np.ndarray,
        groups: np.ndarray | None = None,
        chance: float = 0.0,
        per_group: bool = False,
        batch_size: int = 1024,
    ) -> None:
        w = np.asarray(weights)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2:
            raise GameError("weights must be [n_players] or [n_groups, n_players]")
        self.weights = np.stack([_integer_weights(row) for row in w])
        self.quotas = np.asarray(quotas, dtype=np.int64).ravel()
        self.groups = (
            np.zeros(len(self.quotas), np.int64) if groups is None else np.asarray(groups, np.int64).ravel()
        )
        n_groups = self.weights.shape[0]
        if len(self.groups) != len(self.quotas) or len(self.quotas) == 0:
            raise GameError("quotas and groups must have the same non-zero length (one per item)")
        if self.groups.min() < 0 or self.groups.max() >= n_groups:
            raise GameError(f"groups must lie in [0, {n_groups})")
        if per_group and len(np.unique(self.groups)) != n_groups:
            raise GameError("per_group needs at least one item in every group")
        if not 0.0 <= chance < 1.0:
            raise GameError("chance must lie in [0, 1)")
        self.chance, self.per_group = float(chance), bool(per_group)
        super().__init__(
            self.weights.shape[1],
            value_shape=(n_groups,) if per_group else (),
            batch_size=batch_size,
            value_range=1.0 - self.chance,
        )

    @classmethod
    def make(
        cls,
        n_players: int = 200,
        n_hubs: int = 10,
        n_items: int = 1000,
        n_groups: int = 1,
        seed: int = 0,
        hub_weights: tuple[int, int] = (40, 10),
        other_weights: tuple[int, int] = (0, 2),
        quota_range: tuple[float, float] = (0.5, 0.9),
        chance: float = 0.1,
        per_group: bool = False,
    ) -> FewHubsGame:
        """A random instance: ``n_hubs`` players with integer weights spread evenly over ``hub_weights``
        (heaviest first), the others with weights drawn in ``other_weights`` (inclusive), item quotas
        uniform in ``quota_range`` times the group's total weight. With several groups, every hub is heavy
        in a random subset of the groups (at least one) and weighs like the others elsewhere."""
        rng = np.random.default_rng(seed)
        hubs = rng.choice(n_players, size=n_hubs, replace=False)
        hub_w = np.round(np.linspace(hub_weights[0], hub_weights[1], n_hubs)).astype(np.int64)
        weights = rng.integers(other_weights[0], other_weights[1] + 1, size=(n_groups, n_players))
        for h, wh in zip(hubs, hub_w, strict=True):
            heavy = rng.random(n_groups) < 0.5
            heavy[rng.integers(n_groups)] = True
            weights[heavy, h] = wh
        groups = np.sort(np.arange(n_items) % n_groups)
        totals = weights.sum(axis=1)[groups]
        lo, hi = quota_range
        quotas = np.ceil(rng.uniform(lo, hi, size=n_items) * totals).astype(np.int64)
        return cls(weights, quotas, groups, chance=chance, per_group=per_group)

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        totals = coalitions.astype(np.int64) @ self.weights.T  # [m, groups], exact integers
        correct = totals[:, self.groups] >= self.quotas[None, :]
        if self.per_group:
            acc = np.stack(
                [correct[:, self.groups == g].mean(axis=1) for g in range(self.weights.shape[0])], 1
            )
        else:
            acc = np.count_nonzero(correct, axis=1) / correct.shape[1]
        return self.chance + (1.0 - self.chance) * acc

    def subgame(self, rng: np.random.Generator, size: int | None) -> FewHubsGame:
        """The game on a random batch of ``size`` items (None: all items)."""
        if size is None or size >= len(self.quotas):
            return self
        if self.per_group:
            per = max(1, size // self.weights.shape[0])
            items = np.concatenate(
                [
                    rng.choice(idx, size=min(per, len(idx)), replace=False)
                    for idx in (np.flatnonzero(self.groups == g) for g in range(self.weights.shape[0]))
                ]
            )
        else:
            items = rng.choice(len(self.quotas), size=size, replace=False)
        items = np.sort(items)
        return FewHubsGame(
            self.weights,
            self.quotas[items],
            self.groups[items],
            chance=self.chance,
            per_group=self.per_group,
            batch_size=self.batch_size,
        )

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values on all items: [n] (or [n, n_groups] when ``per_group``)."""
        n_groups, n = self.weights.shape
        per_group = np.zeros((n, n_groups))
        for g in range(n_groups):
            items = self.groups == g
            if not items.any():
                continue
            swing = _swing_probabilities(self.weights[g], self.quotas[items])
            per_group[:, g] = [swing[int(u)].mean() for u in self.weights[g]]
        scale = 1.0 - self.chance
        if self.per_group:
            return per_group * scale
        share = np.bincount(self.groups, minlength=n_groups) / len(self.groups)
        return (per_group * share[None, :]).sum(axis=1) * scale
