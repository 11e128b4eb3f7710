"""Strata of data items (label x group) and seeded picks that keep their proportions: the held-out split's
(deterministic largest remainder) and the per-permutation batch draws' (unbiased systematic rounding)."""

from __future__ import annotations

import numpy as np

from onnxshap.errors import DataError


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


def draw_counts(
    counts: np.ndarray, size: int, rng: np.random.Generator, at_least_one: bool = False
) -> np.ndarray:
    """Items to draw from each stratum for a batch of `size` (< sum of counts).

    Each stratum's share is size * count / N; its integer part is always drawn and the fractions are rounded
    by systematic sampling over the strata in random order, so a stratum gets its exact share on average and
    the batch has exactly `size` items. With `at_least_one`, strata whose share is below 1 get exactly one
    item and the others share the rest in proportion (DataError when `size` < the number of strata).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if at_least_one and size < len(counts):
        raise DataError(f"a batch of {size} items cannot hold one item of each of {len(counts)} strata")
    quota = size * counts / counts.sum()
    fixed = np.zeros(len(counts), dtype=bool)
    while at_least_one and (small := ~fixed & (quota < 1)).any():
        fixed |= small
        rest = counts * ~fixed
        quota = np.where(fixed, 1.0, (size - fixed.sum()) * rest / max(rest.sum(), 1))
    take = np.floor(quota).astype(np.int64)
    left = size - int(take.sum())
    if left > 0:
        frac = quota - take
        order = rng.permutation(len(counts))
        cum = np.cumsum(frac[order])
        points = (rng.random() + np.arange(left)) * (cum[-1] / left)  # all below cum[-1]
        take[order[np.searchsorted(cum, points, side="right")]] += 1
    return np.minimum(take, counts)


def stratified_draw(
    strata: np.ndarray, size: int, rng: np.random.Generator, at_least_one: bool = False
) -> np.ndarray:
    """Sorted indices of `size` items drawn without replacement, stratified as `draw_counts` says."""
    take = draw_counts(np.bincount(strata), size, rng, at_least_one)
    picked = [rng.choice(np.flatnonzero(strata == s), size=t, replace=False) for s, t in enumerate(take) if t]
    return np.sort(np.concatenate(picked))
