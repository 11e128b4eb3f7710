"""Strata of data items (label x group) and seeded picks that keep their proportions: the held-out split's
(deterministic largest remainder) and the per-permutation batch draws' (unbiased systematic rounding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def strata_of(labels: np.ndarray | None, groups: np.ndarray | None) -> np.ndarray | None:
    """Stratum id per item (0..S-1, every id used): its label, its group, or its label x group; None without
    either. Only one class id per item is a stratum: other labels (e.g. sequences [N, L]) are left out."""
    if labels is not None and np.asarray(labels).ndim != 1:
        labels = None
    if labels is None and groups is None:
        return None
    if groups is None:
        return np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)
    g = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    if labels is None:
        return g
    pairs = np.stack([np.asarray(labels).astype(np.int64), g.astype(np.int64)], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)


def stratified_pick(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k indices, spread over strata in proportion to their sizes (largest remainder), random within each."""
    counts = np.bincount(strata)
    quota = k * counts / counts.sum()
    take = np.floor(quota).astype(np.int64)
    left = k - int(take.sum())
    if left:
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:left]] += 1
    picked = [rng.permutation(np.flatnonzero(strata == s))[:t] for s, t in enumerate(take) if t]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def cell_values(strata: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per stratum, the index of its items' value among the distinct values (e.g. its class among the classes).
    `values` must be constant within each stratum (a label or group the strata were made from)."""
    ids = np.unique(np.asarray(values), return_inverse=True)[1].reshape(-1)
    out = np.empty(int(strata.max()) + 1, dtype=np.int64)
    out[strata] = ids
    return out


def draw_counts(
    counts: np.ndarray, size: int, rng: np.random.Generator, covers: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Items to draw from each stratum for a batch of `size` (< the sum of counts).

    Each stratum's share is size * count / N; its integer part is always drawn and the fractions are rounded by
    systematic sampling over the strata in random order, so a stratum gets exactly its share on average and the
    batch has exactly `size` items. Each array of `covers` maps a stratum to a value (its class, its group); in
    the given order, every value of a cover then gets at least one item when `size` allows it (an uncovered
    value takes one item, from a stratum of its own drawn by size, off the fullest stratum whose loss uncovers
    nothing): only then do the counts depart from the shares.
    """
    counts = np.asarray(counts, dtype=np.int64)
    quota = size * counts / counts.sum()
    take = np.floor(quota).astype(np.int64)
    left = size - int(take.sum())
    if left > 0:
        frac = quota - take
        order = rng.permutation(len(counts))
        cum = np.cumsum(frac[order])
        points = (rng.random() + np.arange(left)) * (cum[-1] / left)  # all below cum[-1]
        take[order[np.searchsorted(cum, points, side="right")]] += 1
    take = np.minimum(take, counts)
    enforced: list[np.ndarray] = []
    for cover in covers:
        cover = np.asarray(cover)
        if size < int(cover.max()) + 1:
            continue
        enforced.append(cover)
        for value in range(int(cover.max()) + 1):
            cells = np.flatnonzero((cover == value) & (counts > 0))
            if take[cells].sum() == 0 and len(cells):
                _move_one_into(take, counts, cells, enforced, rng)
    return take


def _covered(take: np.ndarray, covers: list[np.ndarray]) -> list[np.ndarray]:
    """Per cover, which of its values have an item in `take`."""
    return [np.bincount(cover, weights=take, minlength=int(cover.max()) + 1) > 0 for cover in covers]


def _move_one_into(
    take: np.ndarray,
    counts: np.ndarray,
    cells: np.ndarray,
    covers: list[np.ndarray],
    rng: np.random.Generator,
) -> None:
    """Move one item into one of `cells` (drawn by size) from the fullest stratum whose loss uncovers no value of
    `covers`; left as is when no move can (a later cover that cannot be met together with earlier ones)."""
    before = _covered(take, covers)
    receivers = rng.choice(cells, size=len(cells), replace=False, p=counts[cells] / counts[cells].sum())
    for r in receivers:
        for d in np.argsort(-take, kind="stable"):
            if take[d] == 0:
                break
            if d == r or take[r] >= counts[r]:
                continue
            take[d] -= 1
            take[r] += 1
            if all((after | ~was).all() for after, was in zip(_covered(take, covers), before, strict=True)):
                return
            take[d] += 1
            take[r] -= 1


def stratified_draw(
    strata: np.ndarray, size: int, rng: np.random.Generator, covers: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Sorted indices of `size` items drawn without replacement, stratified as `draw_counts` says."""
    take = draw_counts(np.bincount(strata), size, rng, covers)
    picked = [rng.choice(np.flatnonzero(strata == s), size=t, replace=False) for s, t in enumerate(take) if t]
    return np.sort(np.concatenate(picked))
