"""Confidence sequences: intervals for the means of bounded samples that are valid at every time at once.

One sequence per unit, vectorised over units with numpy. Each unit receives samples in [0, 1] one at a
time (the estimators map marginals in [-R, R] to [0, 1]); after any number of samples, and however often
one looks, the unit's running interval holds its mean with probability at least 1 - ``alpha``. Asking at
``alpha = delta / n`` for each of n units makes the intervals hold for every unit and every time at once
with probability at least 1 - delta (union bound). The intervals assume only that each sample has the
same conditional mean given the past (which units get a sample may depend on the past).

Three constructions, chosen with ``make_sequences``; ``bench/confseq.py`` compares them (and the PyPI
packages ``confseq`` and ``expectation``) on coverage, width and speed:

* :class:`BettingCS` ("betting", the default): hedged capital with predictable plug-in bets,
  Waudby-Smith & Ramdas 2024 (JRSS-B, "Estimating means of bounded random variables by betting"), on a
  grid of candidate means. Adapts to the variance and to samples that sit on one value, without
  knowing either in advance.
* :class:`StitchedBernsteinCS` ("stitched"): the empirical-Bernstein sequence of Howard, Ramdas,
  McAuliffe & Sekhon 2021 (Ann. Stat., "Time-uniform, nonparametric, nonasymptotic confidence
  sequences", Theorems 1 and 4): polynomial stitching of the sub-gamma boundary, closed form.
* :class:`PlugInBernsteinCS` ("plugin-bernstein"): the predictable plug-in empirical-Bernstein
  sequence of Waudby-Smith & Ramdas 2024 (Theorem 2), closed form from running sums.

Every state is a few arrays (:meth:`state` / :meth:`load`), so a checkpointed run resumes bit for bit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from onnxshap.estimators.stats import restore_arrays

KINDS = ("betting", "stitched", "plugin-bernstein")


def to_unit(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Samples in [low, high] (marginals: [-R, R], or [0, R] for a monotone game) -> [0, 1], clipped so
    that rounding cannot step outside."""
    return np.clip((np.asarray(x, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def from_unit(y: np.ndarray, low: float, high: float) -> np.ndarray:
    """[0, 1] -> [low, high]."""
    return low + np.asarray(y, dtype=np.float64) * (high - low)


class ConfidenceSequences(ABC):
    """Running two-sided confidence sequences for the means of ``n`` streams of samples in [0, 1].

    ``lo`` / ``hi`` are the running intersection of the intervals computed at each :meth:`refresh`
    (intersecting over any set of times keeps the guarantee); ``count`` the samples per unit.
    """

    kind: ClassVar[str]

    def __init__(self, n: int, alpha: float) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        self.n, self.alpha = int(n), float(alpha)
        self.count = np.zeros(self.n, dtype=np.int64)
        self.sum_y = np.zeros(self.n)
        self.lo = np.zeros(self.n)
        self.hi = np.ones(self.n)

    @property
    def mean(self) -> np.ndarray:
        """Sample mean per unit (0.5 before the first sample)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum_y / np.maximum(self.count, 1), 0.5)

    def _select(self, mask: np.ndarray | None) -> np.ndarray | slice:
        if mask is None or bool(np.all(mask)):
            return slice(None)
        return np.flatnonzero(mask)

    def update(self, y: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one sample ``y[i]`` (in [0, 1]) for every unit i with ``mask[i]`` (all when None)."""
        sel = self._select(mask)
        ys = np.asarray(y, dtype=np.float64)[sel]
        if ys.size == 0:
            return
        if ys.min() < 0.0 or ys.max() > 1.0:
            raise ValueError("confidence-sequence samples must lie in [0, 1]")
        self._update(sel, ys)
        self.count[sel] += 1
        self.sum_y[sel] += ys

    @abstractmethod
    def _update(self, sel: np.ndarray | slice, ys: np.ndarray) -> None:
        """Fold one sample per selected unit into the construction's own state (before counts move)."""

    @abstractmethod
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The current (not intersected) interval of every unit."""

    def refresh(self) -> None:
        """Intersect the running intervals with the current ones."""
        lo, hi = self._bounds()
        self.lo = np.maximum(self.lo, lo)
        self.hi = np.minimum(self.hi, hi)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"count": self.count, "sum_y": self.sum_y, "lo": self.lo, "hi": self.hi}

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays to checkpoint, keys prefixed."""
        return {f"{prefix}{k}": v for k, v in self._arrays().items()}

    def load(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        """Restore what :meth:`state` saved (shapes must match)."""
        restore_arrays(self, arrays, prefix, self._arrays())


def betting_grid(center: float = 0.5, points_per_side: int = 400, smallest: float = 1e-5) -> np.ndarray:
    """Candidate means in [0, 1], dense around ``center`` (where a marginal of 0 maps: 1/2 for marginals in
    [-R, R], 0 for a monotone game's [0, R]): center -/+ its distance to 0 / 1 times r^j, geometric from 1
    down to ``smallest`` (relative spacing ~3% with the defaults), plus the center itself.

    Shapley values sum to v(all) - v(empty), so with many units most of them lie within a small fraction
    of R of 0; a grid that is uniform in [0, 1] would be too coarse exactly there.
    """
    offsets = np.geomspace(1.0, smallest, points_per_side)
    below = center - center * offsets if center > 0 else np.zeros(0)
    above = (center + (1.0 - center) * offsets)[::-1] if center < 1 else np.zeros(0)
    return np.unique(np.concatenate([below, [center], above]))


def _plug_in_lambda(count: np.ndarray, sum_y: np.ndarray, sum_sq: np.ndarray, log_term: float) -> np.ndarray:
    """Predictable plug-in bets for the next sample (WSR 2024, eq. (26)): sqrt(2 log(2/alpha) /
    (sigma^2_{t-1} t log(1 + t))) with the regularised variance (1/4 + sum (y_i - mu_i)^2) / t."""
    t = count.astype(np.float64) + 1.0
    var = (0.25 + sum_sq) / t
    return np.sqrt(2.0 * log_term / (var * t * np.log1p(t)))


class BettingCS(ConfidenceSequences):
    """Hedged-capital betting confidence sequences on a grid of candidate means.

    For every candidate m, K+ = prod (1 + l+_i (y_i - m)) and K- = prod (1 - l-_i (y_i - m)) with the
    predictable plug-in bets l_i truncated at c_i / m and c_i / (1 - m); m is excluded once
    max(theta K+, (1 - theta) K-) >= 1 / alpha (Ville's inequality: anytime valid). K+ decreases in m
    and K- increases, so the excluded candidates form two end pieces and the set left is an interval;
    its bounds are reported at the last excluded grid point on each side (conservative: the exact
    bound lies between that point and the next). Cost: 2 log1p per grid point per sample.

    The truncation c_i (WSR use a constant 1/2 or 3/4) is itself predictable here: c_max on a unit whose
    regularised variance is ~0 (its samples sit on one value, as truncated marginals do: bolder bets
    then shrink the interval ~1.8x faster than c = 1/2), falling linearly to c_min at the largest
    variance (1/4), where bold early bets would lose capital. Any predictable c < 1 keeps the guarantee.
    """

    kind = "betting"

    def __init__(
        self,
        n: int,
        alpha: float,
        grid: np.ndarray | None = None,
        c_min: float = 0.5,
        c_max: float = 0.99,
    ) -> None:
        super().__init__(n, alpha)
        if not 0.0 < c_min <= c_max < 1.0:
            raise ValueError(f"need 0 < c_min <= c_max < 1, got {c_min}, {c_max}")
        self.grid = betting_grid() if grid is None else np.asarray(grid, dtype=np.float64)
        self.c_min, self.c_max, self.theta = float(c_min), float(c_max), 0.5
        with np.errstate(divide="ignore"):
            self._inv_m = np.where(self.grid > 0, 1.0 / self.grid, np.inf)
            self._inv_1m = np.where(self.grid < 1, 1.0 / (1.0 - self.grid), np.inf)
        self._log_bet = math.log(2.0 / alpha)  # the bets of each side aim at alpha / 2
        self._log_threshold_plus = math.log(1.0 / (alpha * self.theta))
        self._log_threshold_minus = math.log(1.0 / (alpha * (1.0 - self.theta)))
        self.sum_sq = np.zeros(self.n)
        self.log_k_plus = np.zeros((self.n, len(self.grid)))
        self.log_k_minus = np.zeros((self.n, len(self.grid)))

    def _update(self, sel: np.ndarray | slice, ys: np.ndarray) -> None:
        count, sum_y, sum_sq = self.count[sel], self.sum_y[sel], self.sum_sq[sel]
        t = count + 1.0
        var = (0.25 + sum_sq) / t  # regularised variance of the samples so far
        lam = np.sqrt(2.0 * self._log_bet / (var * t * np.log1p(t)))[:, None]
        c = (self.c_min + (self.c_max - self.c_min) * np.clip(1.0 - 4.0 * var, 0.0, 1.0))[:, None]
        diff = ys[:, None] - self.grid[None, :]
        self.log_k_plus[sel] += np.log1p(np.minimum(lam, c * self._inv_m) * diff)
        self.log_k_minus[sel] += np.log1p(-np.minimum(lam, c * self._inv_1m) * diff)
        mu = (0.5 + sum_y + ys) / (t + 1.0)
        self.sum_sq[sel] = sum_sq + (ys - mu) ** 2

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        g = len(self.grid)
        out_low = self.log_k_plus >= self._log_threshold_plus  # m too small
        out_high = self.log_k_minus >= self._log_threshold_minus  # m too large
        # the lower bound: the largest grid point excluded from below (0 if none)
        last_low = g - 1 - np.argmax(out_low[:, ::-1], axis=1)
        lo = np.where(out_low.any(axis=1), self.grid[last_low], 0.0)
        first_high = np.argmax(out_high, axis=1)
        hi = np.where(out_high.any(axis=1), self.grid[first_high], 1.0)
        return lo, hi

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            **super()._arrays(),
            "sum_sq": self.sum_sq,
            "log_k_plus": self.log_k_plus,
            "log_k_minus": self.log_k_minus,
        }


def stitched_boundary(
    v: np.ndarray, alpha: float, c: float = 1.0, v_min: float = 1.0, s: float = 1.4, eta: float = 2.0
) -> np.ndarray:
    """Polynomial-stitched sub-gamma uniform boundary (Howard et al. 2021, Theorem 1, eq. (6)):
    S(v) = sqrt(k1^2 v l(v) + k2^2 c^2 l(v)^2) + k2 c l(v), l(v) = s log log(eta v / v_min) +
    log(zeta(s) / (alpha log(eta)^s)); crossed with probability <= alpha at any time. v < v_min counts
    as v_min (the boundary increases in v)."""
    v = np.maximum(np.asarray(v, dtype=np.float64), v_min)
    zeta_s = _zeta(s)
    ell = s * np.log(np.log(eta * v / v_min)) + math.log(zeta_s / (alpha * math.log(eta) ** s))
    k1 = (eta**0.25 + eta**-0.25) / math.sqrt(2.0)
    k2 = (math.sqrt(eta) + 1.0) / 2.0
    return np.sqrt(k1**2 * v * ell + (k2 * c * ell) ** 2) + k2 * c * ell


def _zeta(s: float) -> float:
    """Riemann zeta for s > 1 (Euler-Maclaurin from n = 50: accurate to ~1e-12)."""
    n = 50
    total = sum(k**-s for k in range(1, n))
    total += n ** (1 - s) / (s - 1) + 0.5 * n**-s + s * n ** (-s - 1) / 12.0
    total -= s * (s + 1) * (s + 2) * n ** (-s - 3) / 720.0
    return float(total)


class StitchedBernsteinCS(ConfidenceSequences):
    """Empirical-Bernstein confidence sequences by polynomial stitching (Howard et al. 2021).

    For samples in [0, 1], S_t = sum (y_i - mu) is sub-exponential (hence sub-gamma) with scale c = 1 and
    variance process V_t = sum (y_i - yhat_{i-1})^2, yhat a predictable mean estimate (Theorem 4); each
    side's stitched boundary at alpha / 2 gives |mean_t - mu| <= S(V_t) / t. Closed form from running
    sums: no grid, 4 floats per unit. ``v_min`` is where the boundary is tightest (1 sample's worth).
    """

    kind = "stitched"

    def __init__(self, n: int, alpha: float, v_min: float = 1.0) -> None:
        super().__init__(n, alpha)
        self.v_min = float(v_min)
        self.v = np.zeros(self.n)

    def _update(self, sel: np.ndarray | slice, ys: np.ndarray) -> None:
        predicted = (0.5 + self.sum_y[sel]) / (self.count[sel] + 1.0)
        self.v[sel] += (ys - predicted) ** 2

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        radius = stitched_boundary(self.v, self.alpha / 2.0, v_min=self.v_min) / np.maximum(self.count, 1)
        mean = self.mean
        seen = self.count > 0
        return np.where(seen, mean - radius, 0.0), np.where(seen, mean + radius, 1.0)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "v": self.v}


class PlugInBernsteinCS(ConfidenceSequences):
    """Predictable plug-in empirical-Bernstein confidence sequences (Waudby-Smith & Ramdas 2024, Thm 2).

    C_t = sum l_i y_i / sum l_i ± (log(2/alpha) + sum v_i psi(l_i)) / sum l_i with v_i = 4 (y_i -
    mu_{i-1})^2, psi(l) = (-log(1 - l) - l) / 4 and the plug-in bets l_i truncated at ``c``.
    """

    kind = "plugin-bernstein"

    def __init__(self, n: int, alpha: float, c: float = 0.5) -> None:
        super().__init__(n, alpha)
        self.c = float(c)
        self._log_term = math.log(2.0 / alpha)
        self.sum_sq = np.zeros(self.n)
        self.sum_lam = np.zeros(self.n)
        self.sum_lam_y = np.zeros(self.n)
        self.sum_v_psi = np.zeros(self.n)

    def _update(self, sel: np.ndarray | slice, ys: np.ndarray) -> None:
        count, sum_y, sum_sq = self.count[sel], self.sum_y[sel], self.sum_sq[sel]
        lam = np.minimum(_plug_in_lambda(count, sum_y, sum_sq, self._log_term), self.c)
        mu_prev = (0.5 + sum_y) / (count + 1.0)
        self.sum_lam[sel] += lam
        self.sum_lam_y[sel] += lam * ys
        self.sum_v_psi[sel] += (ys - mu_prev) ** 2 * (-np.log1p(-lam) - lam)
        t = count + 1.0
        mu = (0.5 + sum_y + ys) / (t + 1.0)
        self.sum_sq[sel] = sum_sq + (ys - mu) ** 2

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        seen = self.count > 0
        lam = np.where(seen, self.sum_lam, 1.0)
        center = self.sum_lam_y / lam
        radius = (self._log_term + self.sum_v_psi) / lam
        return np.where(seen, center - radius, 0.0), np.where(seen, center + radius, 1.0)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            **super()._arrays(),
            "sum_sq": self.sum_sq,
            "sum_lam": self.sum_lam,
            "sum_lam_y": self.sum_lam_y,
            "sum_v_psi": self.sum_v_psi,
        }


def make_sequences(kind: str, n: int, alpha: float, center: float = 0.5) -> ConfidenceSequences:
    """A fresh set of ``n`` confidence sequences of ``kind`` (one of :data:`KINDS`) at level ``alpha``;
    ``center`` is where most means are expected (the betting grid is densest there)."""
    if kind == "betting":
        return BettingCS(n, alpha, betting_grid(center))
    if kind == "stitched":
        return StitchedBernsteinCS(n, alpha)
    if kind == "plugin-bernstein":
        return PlugInBernsteinCS(n, alpha)
    raise ValueError(f"unknown confidence sequence {kind!r}; choose one of: {', '.join(KINDS)}")
