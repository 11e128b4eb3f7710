"""Running per-player moments: memory bounded, no per-permutation storage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


def restore_arrays(
    target: object, arrays: Mapping[str, np.ndarray], prefix: str, names: Iterable[str]
) -> None:
    """Set ``target.<name>`` from ``arrays[prefix + name]`` for each name, in the current array's dtype;
    a shape other than the current one is a ValueError (a checkpoint of another run)."""
    for name in names:
        arr = np.asarray(arrays[f"{prefix}{name}"])
        cur = getattr(target, name)
        if arr.shape != cur.shape:
            raise ValueError(f"checkpoint array {prefix}{name} has shape {arr.shape}, expected {cur.shape}")
        setattr(target, name, arr.astype(cur.dtype, copy=True))


class RunningMoments:
    """Per-player count, mean and sum of squared deviations (Welford), elementwise for vector values.

    Same memory as (sum, sum of squares, count) but without the cancellation of sum-of-squares
    variance. Updates are applied one sample vector at a time in a fixed order, so the state is a
    deterministic function of the samples and their order, whatever the batching.
    """

    def __init__(self, n_players: int, shape: tuple[int, ...] = ()) -> None:
        self.shape = tuple(shape)
        self.count = np.zeros(n_players, dtype=np.int64)
        self.mean = np.zeros((n_players, *self.shape), dtype=np.float64)
        self.m2 = np.zeros((n_players, *self.shape), dtype=np.float64)

    def update(self, x: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one sample ``x[i]`` for every player i with ``mask[i]`` (all players when mask is None)."""
        if mask is None or mask.all():
            sel: slice | np.ndarray = slice(None)
        else:
            sel = np.flatnonzero(mask)
            if sel.size == 0:
                return
        xs = x[sel]
        self.count[sel] += 1
        cnt = self.count[sel].astype(np.float64).reshape(-1, *((1,) * len(self.shape)))
        delta = xs - self.mean[sel]
        self.mean[sel] += delta / cnt
        self.m2[sel] += delta * (xs - self.mean[sel])

    def merge(self, other: RunningMoments) -> None:
        """Fold in the moments of another batch of samples (Chan et al.'s pairwise combination).

        Used by distributed executors: workers summarise chunks of permutations and the driver merges
        the chunks in index order, so the result depends on the chunking, never on which worker ran
        what. Equal to updating with the other batch's samples up to rounding (~1e-16 relative).
        """
        if other.mean.shape != self.mean.shape:
            raise ValueError(f"cannot merge moments of shape {other.mean.shape} into {self.mean.shape}")
        trail = (1,) * len(self.shape)
        n_a = self.count.astype(np.float64).reshape(-1, *trail)
        n_b = other.count.astype(np.float64).reshape(-1, *trail)
        total = n_a + n_b
        safe = np.where(total > 0, total, 1.0)
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (n_b / safe)
        self.m2 = self.m2 + other.m2 + delta * delta * (n_a * n_b / safe)
        self.count = self.count + other.count

    def variance(self) -> np.ndarray:
        """Sample variance (n - 1 denominator); NaN where fewer than 2 samples."""
        cnt = self.count.astype(np.float64).reshape(-1, *((1,) * len(self.shape)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt >= 2, self.m2 / (cnt - 1.0), np.nan)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays to checkpoint, keys prefixed."""
        return {f"{prefix}count": self.count, f"{prefix}mean": self.mean, f"{prefix}m2": self.m2}

    def load(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        """Restore from :meth:`state` output (shapes must match)."""
        restore_arrays(self, arrays, prefix, ("count", "mean", "m2"))
