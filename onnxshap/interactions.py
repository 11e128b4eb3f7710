"""Pairwise interactions of players: MSA's two-dimensional analysis, which is the Shapley interaction index.

msapy's ``network_interaction_2d`` values a pair (i, j) as gamma_ij - gamma_i - gamma_j: the Shapley value of
{i, j} played as one player, minus i's value with j lesioned, minus j's value with i lesioned (Keinan et
al. 2004). Written out over coalitions S of the other players, each of the three is a sum with the weights
|S|! (n - |S| - 2)! / (n - 1)!, so the difference is

    I_ij = sum over S in N \\ {i, j} of |S|! (n - |S| - 2)! / (n - 1)! * [v(S+ij) - v(S+i) - v(S+j) + v(S)],

the Shapley interaction index (Grabisch & Roubens 1999; shapiq's "SII" of order 2). Positive: the two
together add more than apart (synergy); negative: they are redundant.

``method="exact"`` sums over every S (n <= 20 players). ``method="sampled"`` draws S as the players before
i in a random permutation of N \\ {j} (exactly the weights above), one i.i.d. sample per pair and
permutation; the four coalitions of every pair of a permutation go to the game in one call (shared
coalitions evaluated once). Intervals: empirical Bernstein (Maurer & Pontil) on samples in a range of
width 4R (R = the game's value range) at level delta / (number of pairs): all intervals hold together
with probability >= 1 - delta for the number of permutations fixed in advance. When the game has no
known value range the intervals are Student-t (a CLT approximation without a finite-sample guarantee).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxshap.errors import DataError
from onnxshap.estimators.walk import removal_positions
from onnxshap.games.base import Game

EXACT_MAX_PLAYERS = 20


@dataclass
class Interactions:
    """Pairwise interaction values of the players ``players`` (indices into the game's players)."""

    players: list[int]
    pairs: list[tuple[int, int]]  # indices into ``players``
    values: np.ndarray  # [n_pairs]
    ci_low: np.ndarray
    ci_high: np.ndarray
    samples: int
    evaluations: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def matrix(self) -> np.ndarray:
        """Symmetric [m, m] matrix of the values (0 on the diagonal)."""
        m = len(self.players)
        out = np.zeros((m, m))
        for (a, b), v in zip(self.pairs, self.values, strict=True):
            out[a, b] = out[b, a] = v
        return out


def _scalar(values: np.ndarray) -> np.ndarray:
    return values if values.ndim == 1 else values.reshape(len(values), -1).mean(axis=1)


def _exact(game: Game, players: list[int], pairs: list[tuple[int, int]]) -> np.ndarray:
    n = game.n_players
    if n > EXACT_MAX_PLAYERS:
        raise DataError(
            f"exact interactions enumerate 2^(n-2) coalitions per pair; this game has {n} players "
            f"(at most {EXACT_MAX_PLAYERS}): use method='sampled'"
        )
    ids = np.arange(1 << n, dtype=np.int64)
    coal = ((ids[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1).astype(np.bool_)
    v = _scalar(np.asarray(game(coal), dtype=np.float64))
    sizes = coal.sum(axis=1)
    out = np.zeros(len(pairs))
    for k, (a, b) in enumerate(pairs):
        i, j = players[a], players[b]
        base = ~coal[:, i] & ~coal[:, j]
        s = ids[base]
        w = np.array([math.factorial(t) * math.factorial(n - t - 2) for t in range(n - 1)]) / math.factorial(
            n - 1
        )
        bi, bj = np.int64(1) << i, np.int64(1) << j
        delta = v[s | bi | bj] - v[s | bi] - v[s | bj] + v[s]
        out[k] = float(np.sum(w[sizes[base]] * delta))
    return out


def pair_interactions(
    game: Game,
    players: list[int],
    *,
    method: str = "sampled",
    n_permutations: int = 100,
    images: int | None = None,
    seed: int = 0,
    delta: float = 0.05,
) -> Interactions:
    """Interactions of every pair among ``players`` in ``game`` (vector games: the mean over elements).

    See the module docstring for the quantity, the estimator and the intervals' guarantee. ``images``:
    data items per permutation (``game.subgame``), as in the Shapley runs; None values on all items.
    """
    players = [int(p) for p in players]
    if len(players) < 2 or len(set(players)) != len(players):
        raise DataError("interactions need at least two distinct players")
    if any(not 0 <= p < game.n_players for p in players):
        raise DataError(f"players must lie in [0, {game.n_players})")
    if not 0 < delta < 1:
        raise DataError("delta must lie in (0, 1)")
    pairs = list(itertools.combinations(range(len(players)), 2))
    before = game.evaluations
    if method == "exact":
        values = _exact(game, players, pairs)
        return Interactions(
            players, pairs, values, values.copy(), values.copy(), 0, game.evaluations - before,
            {"method": "exact", "guarantee": "exact values (every coalition enumerated)"},
        )  # fmt: skip
    if method != "sampled":
        raise DataError(f"unknown interaction method {method!r}; choose sampled or exact")
    if n_permutations < 2:
        raise DataError("sampled interactions need at least 2 permutations")
    n = game.n_players
    samples = np.zeros((n_permutations, len(pairs)))
    evaluations = 0
    for p in range(n_permutations):
        rng = np.random.default_rng([seed, p])
        order = rng.permutation(n)
        position = removal_positions(order)
        sub = game.subgame(rng, images)
        rows = np.empty((len(pairs), 4, n), dtype=np.bool_)
        for k, (a, b) in enumerate(pairs):
            i, j = players[a], players[b]
            s = position < position[i]
            s[j] = False
            rows[k] = s
            rows[k, 1, i] = True
            rows[k, 2, j] = True
            rows[k, 3, [i, j]] = True
        flat = rows.reshape(-1, n)
        unique, inverse = np.unique(flat, axis=0, return_inverse=True)
        v = _scalar(np.asarray(sub(unique), dtype=np.float64))[inverse.reshape(-1)].reshape(len(pairs), 4)
        evaluations += len(unique)
        samples[p] = v[:, 3] - v[:, 1] - v[:, 2] + v[:, 0]
    values = samples.mean(axis=0)
    variance = samples.var(axis=0, ddof=1)
    counts = np.full(len(pairs), n_permutations)
    level = delta / len(pairs)
    from onnxshap.estimators.bounds import empirical_bernstein_radius, t_halfwidth

    if game.value_range is not None:
        width = 4.0 * game.value_range
        radius = empirical_bernstein_radius(variance, counts, width, level)
        low = np.maximum(values - radius, -width / 2)
        high = np.minimum(values + radius, width / 2)
        guarantee = (
            f"empirical Bernstein, samples in a range of width {width:g} (4R), level delta/{len(pairs)} per "
            f"pair: all {len(pairs)} intervals hold together with probability >= {1 - delta:g}"
        )
    else:
        radius = t_halfwidth(variance, counts, level)
        low, high = values - radius, values + radius
        guarantee = "Student-t (CLT approximation, no finite-sample guarantee: the game has no known range)"
    meta = {
        "method": "sampled",
        "n_permutations": n_permutations,
        "images": images,
        "seed": seed,
        "delta": delta,
        "guarantee": guarantee,
    }
    return Interactions(players, pairs, values, low, high, n_permutations, evaluations, meta)
