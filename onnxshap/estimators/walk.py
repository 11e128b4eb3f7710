"""Permutation walks from the full set downwards, several permutations in lock-step.

This is the one place that talks to the game for the sampling estimators (permutation, truncated,
tmab). A later scale-out backend only has to run :func:`walk_round` on a slice of a round's permutation
indices and hand the :class:`RoundOutput` back: a permutation's randomness comes from ``(seed, index)``
alone, so results do not depend on how permutations are batched or distributed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from onnxshap.games.base import Game

_MAX_BLOCK_CELLS = 1 << 24  # coalition-matrix cells per block of the untruncated walk (16 MB of bools)


@dataclass
class RoundOutput:
    """Marginals of one round: ``marginals[r, i]`` is player i's marginal in the r-th permutation.

    ``sampled[r, i]`` says whether that marginal is a sample (evaluated, or 0 after truncation);
    ``orders[r]`` is the removal order; ``evaluations`` counts every coalition evaluated for the round,
    including v(all) and v(empty) of per-permutation subgames.
    """

    marginals: np.ndarray
    sampled: np.ndarray
    orders: np.ndarray
    evaluations: int


def permutation_rng(seed: int, index: int, antithetic: bool = False) -> np.random.Generator:
    """The generator of permutation ``index`` (antithetic pairs 2j, 2j+1 share generator j)."""
    return np.random.default_rng([seed, index // 2 if antithetic else index])


def _evaluate_grouped(subs: list[Game], keys: list[int], coal: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Values of coalitions ``coal``, row i evaluated on ``subs[owners[i]]``: one call per distinct game."""
    out = np.empty((len(coal), *subs[0].value_shape), dtype=np.float64)
    if not len(coal):
        return out
    owner_keys = np.asarray(keys)[owners]
    for key in np.unique(owner_keys):
        sel = np.flatnonzero(owner_keys == key)
        out[sel] = subs[owners[sel[0]]](coal[sel])
    return out


def _walk_full(
    subs: list[Game],
    keys: list[int],
    ranks: np.ndarray,
    orders: np.ndarray,
    v_full: np.ndarray,
    v_zero: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Untruncated walks with every player evaluated: no step depends on a value, so blocks of steps
    go to the game together (fewer, larger calls; same coalitions, same values, same marginals)."""
    p, n = orders.shape
    values = np.empty((p, n + 1, *v_full.shape[1:]), dtype=np.float64)
    values[:, 0], values[:, n] = v_full, v_zero
    block = max(1, _MAX_BLOCK_CELLS // (p * n))
    for t0 in range(1, n, block):
        steps = np.arange(t0, min(t0 + block, n))
        coal = (ranks[:, None, :] >= steps[None, :, None]).reshape(-1, n)
        owners = np.repeat(np.arange(p), len(steps))
        values[:, steps] = _evaluate_grouped(subs, keys, coal, owners).reshape(
            p, len(steps), *v_full.shape[1:]
        )
    marginals = np.empty((p, n, *v_full.shape[1:]), dtype=np.float64)
    rows = np.arange(p)[:, None]
    marginals[rows, orders] = values[:, :-1] - values[:, 1:]
    return marginals, p * (n - 1)


def walk_round(
    game: Game,
    indices: Sequence[int],
    *,
    seed: int,
    images: int | None = None,
    antithetic: bool = False,
    active: np.ndarray | None = None,
    truncation: float | None = None,
    patience: int = 6,
) -> RoundOutput:
    """Walk permutations ``indices`` from the full coalition down, one removal per step, in lock-step.

    Permutation ``index`` draws its order from ``permutation_rng(seed, index)`` and, when ``images`` is
    set, its own data batch with ``game.subgame(rng, images)`` (antithetic partners share both: the
    odd one walks the reversed order). Each step evaluates, in one game call per distinct (sub)game,
    one coalition per live permutation: the coalition after removing the permutation's next player.
    Untruncated walks of every player depend on no value, so blocks of steps share a call there.

    ``active`` (tmab): players outside it are removed without evaluation; the next active player's
    marginal is then taken from the coalition left after those removals, which costs one extra
    evaluation (as in the original code). ``truncation``: a permutation stops after ``patience``
    consecutive evaluated removals whose value lies within ``truncation`` of its v(empty) (max over
    elements for vector games); its remaining (active) players get marginal 0, counted as a sample.
    """
    n = game.n_players
    shape = game.value_shape
    p = len(indices)
    orders = np.empty((p, n), dtype=np.intp)
    subs: list[Game] = []
    keys: list[int] = []
    cache: dict[int, Game] = {}
    evaluations = 0
    for r, idx in enumerate(indices):
        rng = permutation_rng(seed, int(idx), antithetic)
        order = rng.permutation(n)
        orders[r] = order[::-1] if antithetic and idx % 2 else order
        key = int(idx) // 2 if antithetic else int(idx)
        if images is None:
            sub = game
        elif key in cache:
            sub = cache[key]
        else:
            sub = game.subgame(rng, images)
            cache[key] = sub
            if sub is not game:
                evaluations += 2  # its v(all) and v(empty), evaluated below
        subs.append(sub)
        keys.append(key if sub is not game else -1)

    v_full = np.stack([np.asarray(s.v_all, dtype=np.float64) for s in subs])
    v_zero = np.stack([np.asarray(s.v_empty, dtype=np.float64) for s in subs])
    ranks = np.empty_like(orders)
    ranks[np.arange(p)[:, None], orders] = np.arange(n)[None, :]

    # Positions (in each order) of the players that get evaluated, padded with n.
    if active is None:
        n_act = np.full(p, n, dtype=np.intp)
        act_pos = np.broadcast_to(np.arange(n), (p, n))
    else:
        is_act = active[orders]
        n_act = is_act.sum(axis=1)
        act_pos = np.full((p, max(1, int(n_act.max(initial=0)))), n, dtype=np.intp)
        for r in range(p):
            pos = np.flatnonzero(is_act[r])
            act_pos[r, : len(pos)] = pos

    if active is None and truncation is None:
        marginals, evaluations_walk = _walk_full(subs, keys, ranks, orders, v_full, v_zero)
        sampled = np.ones((p, n), dtype=np.bool_)
        return RoundOutput(marginals, sampled, orders, evaluations + evaluations_walk)

    marginals = np.zeros((p, n, *shape), dtype=np.float64)
    sampled = np.zeros((p, n), dtype=np.bool_)
    ptr = np.zeros(p, dtype=np.intp)  # next entry of act_pos to evaluate
    known = np.zeros(p, dtype=np.intp)  # the value of coalition {rank >= known} is `prev`
    prev = v_full.copy()
    streak = np.zeros(p, dtype=np.intp)
    live = n_act > 0
    reduce_axes = tuple(range(1, 1 + len(shape)))

    while live.any():
        q = np.flatnonzero(live)
        j = act_pos[q, ptr[q]]
        need_before = j != known[q]
        has_after = j + 1 < n
        rows_b, rows_a = q[need_before], q[has_after]
        coal = np.concatenate(
            [ranks[rows_b] >= j[need_before][:, None], ranks[rows_a] >= (j[has_after] + 1)[:, None]]
        )
        owners = np.concatenate([rows_b, rows_a])
        values = _evaluate_grouped(subs, keys, coal, owners)
        evaluations += len(coal)
        before = prev[q]
        before[need_before] = values[: len(rows_b)]
        after = v_zero[q]
        after[has_after] = values[len(rows_b) :]
        players = orders[q, j]
        marginals[q, players] = before - after
        sampled[q, players] = True
        prev[q] = after
        known[q] = j + 1
        ptr[q] += 1
        ended = ptr[q] >= n_act[q]
        if truncation is not None:
            dist = np.abs(after - v_zero[q])
            near = (dist.max(axis=reduce_axes) if reduce_axes else dist) <= truncation
            streak[q] = np.where(near, streak[q] + 1, 0)
            cut = (streak[q] >= patience) & ~ended
            for r in q[cut]:
                rest = act_pos[r, ptr[r] : n_act[r]]
                sampled[r, orders[r, rest]] = True  # unreached players: marginal 0, one sample
            ended |= cut
        live[q[ended]] = False
    return RoundOutput(marginals=marginals, sampled=sampled, orders=orders, evaluations=evaluations)
