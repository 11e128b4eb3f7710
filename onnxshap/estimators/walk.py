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

from onnxshap.estimators.monotone_walk import walk_skipping
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
    indices: np.ndarray | None = None  # the permutation indices walked, in order


def removal_positions(order: np.ndarray) -> np.ndarray:
    """position[i]: how many players a walk removes before player i (the inverse of ``order``)."""
    position = np.empty(len(order), dtype=np.intp)
    position[order] = np.arange(len(order))
    return position


def walk_group(
    index: int, antithetic: bool = False, rotations: int = 1, rotated_walks: int | None = None
) -> tuple[int, int, int]:
    """(key, group size, member) of permutation ``index``: antithetic pairs 2j, 2j+1 have key j;
    with ``rotations`` B > 1, permutations B j .. B j + B - 1 below ``rotated_walks`` (None: all) have
    key j; any other permutation is alone, with key ``index`` (never a group's: keys of groups are below
    ``rotated_walks`` / B)."""
    if antithetic:
        return index // 2, 2, index % 2
    if rotations > 1 and (rotated_walks is None or index < rotated_walks):
        return index // rotations, rotations, index % rotations
    return index, 1, 0


def permutation_rng(
    seed: int, index: int, antithetic: bool = False, rotations: int = 1, rotated_walks: int | None = None
) -> np.random.Generator:
    """The generator of permutation ``index``: the one of its group (see :func:`walk_group`)."""
    return np.random.default_rng([seed, walk_group(index, antithetic, rotations, rotated_walks)[0]])


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
    check_every: int = 1,
    rotations: int = 1,
    rotated_walks: int | None = None,
) -> RoundOutput:
    """Walk permutations ``indices`` from the full coalition down, one removal per step, in lock-step.

    Permutation ``index`` draws its order from ``permutation_rng(seed, index)`` and, when ``images`` is
    set, its own data batch with ``game.subgame(rng, images)`` (antithetic partners share both: the
    odd one walks the reversed order; with ``rotations`` B > 1, the B permutations of a group, see
    :func:`walk_group`, share both and the j-th walks the group's order rotated by j n / B positions,
    so every player is removed once in each B-th of the walk: each walk is a uniformly random order,
    and a player whose value lies in one stretch of removal positions gets there in one of the B
    walks). Each step evaluates, in one game call per distinct (sub)game,
    one coalition per live permutation. Untruncated walks of every player depend on no value, so blocks
    of steps share a call there.

    ``active``: players outside it are removed without evaluation and get no sample; an active player's
    marginal is v(coalition before its removal) - v(after), whatever was removed before it, so it is a
    marginal in a uniformly random order all the same (an evaluation before it is extra when the
    player just before it was skipped). ``truncation``: the value is checked after every
    ``check_every``-th removal (coalitions C_s, C_2s, ... with C_p = the players left after p
    removals); the walk stops at the first check that ends ``patience`` consecutive checks within
    ``truncation`` of its v(empty) (max over elements for vector games), and the (active) players
    removed after that point get marginal 0, counted as a sample. The checks are evaluated whether or
    not a player next to them is active, so where a walk stops depends on its order (and data batch)
    only, never on the active set: a player's truncated marginal has the same distribution in every
    round, however the active set shrinks (its samples stay identically distributed).
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
        key, size, member = walk_group(int(idx), antithetic, rotations, rotated_walks)
        rng = np.random.default_rng([seed, key])
        order = rng.permutation(n)
        if antithetic:
            orders[r] = order[::-1] if member else order
        else:
            orders[r] = np.roll(order, -(member * n // size))
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

    if active is None and truncation is None:
        marginals, evaluations_walk = _walk_full(subs, keys, ranks, orders, v_full, v_zero)
        sampled = np.ones((p, n), dtype=np.bool_)
        return RoundOutput(marginals, sampled, orders, evaluations + evaluations_walk, np.asarray(indices))

    is_act = np.ones((p, n), dtype=np.bool_) if active is None else np.asarray(active)[orders]
    checks = np.arange(check_every, n, check_every) if truncation is not None else np.zeros(0, np.intp)
    # Coalitions C_c (c = 1 .. n-1) each permutation needs, ascending, padded with n: the coalition
    # before and after every active player, and the truncation checks.
    # Nothing after the last active player matters.
    needs = []
    for r in range(p):
        pos = np.flatnonzero(is_act[r])
        last = pos[-1] + 1 if len(pos) else 0
        c = np.unique(np.concatenate([pos, pos + 1, checks[checks <= last]]))
        needs.append(c[(c >= 1) & (c <= min(last, n - 1))])
    width = max(1, max(len(c) for c in needs))
    need = np.full((p, width + 1), n, dtype=np.intp)
    for r, c in enumerate(needs):
        need[r, : len(c)] = c
    values = np.empty((p, width + 1, *shape), dtype=np.float64)
    cut = np.full(p, n, dtype=np.intp)  # players at positions >= cut get marginal 0
    if game.monotone:
        near = None
        if truncation is not None:
            near = [
                lambda v, zero=zero: bool(_near_empty(v[None], zero[None], truncation)[0]) for zero in v_zero
            ]
        evaluations += walk_skipping(
            lambda coal, rows: _evaluate_grouped(subs, keys, coal, rows),
            ranks,
            needs,
            v_full,
            near,
            patience,
            check_every,
            values,
            cut,
        )
        return _round_output(orders, is_act, needs, need, values, cut, v_full, v_zero, evaluations, indices)
    ptr = np.zeros(p, dtype=np.intp)
    streak = np.zeros(p, dtype=np.intp)
    live = need[:, 0] < n
    while live.any():
        q = np.flatnonzero(live)
        c = need[q, ptr[q]]
        vals = _evaluate_grouped(subs, keys, ranks[q] >= c[:, None], q)
        evaluations += len(q)
        values[q, ptr[q]] = vals
        ptr[q] += 1
        if truncation is not None:
            at_check = c % check_every == 0
            near_zero = _near_empty(vals, v_zero[q], truncation)
            streak[q] = np.where(at_check, np.where(near_zero, streak[q] + 1, 0), streak[q])
            stop = at_check & (streak[q] >= patience)
            cut[q[stop]] = c[stop]
            live[q[stop]] = False
        live[q[need[q, ptr[q]] >= n]] = False
    return _round_output(orders, is_act, needs, need, values, cut, v_full, v_zero, evaluations, indices)


def _near_empty(vals: np.ndarray, zero: np.ndarray, truncation: float) -> np.ndarray:
    """Per row: whether the value lies within ``truncation`` of v(empty) (every element, for vector games)."""
    return np.abs(vals - zero).reshape(len(vals), -1).max(axis=1) <= truncation


def _round_output(
    orders: np.ndarray,
    is_act: np.ndarray,
    needs: list[np.ndarray],
    need: np.ndarray,
    values: np.ndarray,
    cut: np.ndarray,
    v_full: np.ndarray,
    v_zero: np.ndarray,
    evaluations: int,
    indices: Sequence[int],
) -> RoundOutput:
    """Marginals from the values of the needed coalitions (0 after each walk's cut)."""
    p, n = orders.shape
    shape = v_full.shape[1:]
    marginals = np.zeros((p, n, *shape), dtype=np.float64)
    sampled = is_act.copy()  # indexed by position here, by player below
    for r in range(p):
        pos = np.flatnonzero(is_act[r] & (np.arange(n) < cut[r]))
        at = need[r, : len(needs[r])]
        before = np.where(
            _expand(pos == 0, shape), v_full[r], values[r, np.searchsorted(at, np.maximum(pos, 1))]
        )
        after = np.where(
            _expand(pos + 1 == n, shape),
            v_zero[r],
            values[r, np.searchsorted(at, np.minimum(pos + 1, n - 1))],
        )
        marginals[r, orders[r, pos]] = before - after
    by_player = np.zeros((p, n), dtype=np.bool_)
    by_player[np.arange(p)[:, None], orders] = sampled
    return RoundOutput(
        marginals=marginals,
        sampled=by_player,
        orders=orders,
        evaluations=evaluations,
        indices=np.asarray(indices),
    )


def _expand(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * len(shape))
