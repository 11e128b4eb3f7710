"""Confidence bounds: Student-t intervals, empirical Bernstein and Hoeffding radii.

Pure numpy + math (no scipy at run time): the t quantile comes from the regularized incomplete beta
function (continued fraction, as in Numerical Recipes) inverted by bisection.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution (p in (0, 1), df > 0), accurate to ~1e-12."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    if df > 1e7:
        return NormalDist().inv_cdf(p)
    lo, hi = 0.0, max(1.0, NormalDist().inv_cdf(p))
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _per_count(counts: np.ndarray, fn: object) -> np.ndarray:
    """Apply a scalar function of the count once per distinct count."""
    out = np.empty(counts.shape, dtype=np.float64)
    for c in np.unique(counts):
        out[counts == c] = fn(int(c))  # type: ignore[operator]
    return out


def t_halfwidth(variance: np.ndarray, counts: np.ndarray, delta: float) -> np.ndarray:
    """Half-width of the two-sided (1 - delta) Student-t interval for a mean of ``counts`` iid samples.

    ``variance`` is the sample variance, shape [n, *shape]; ``counts`` has shape [n]. NaN where the
    count is below 2 (no variance estimate).
    """
    counts = np.asarray(counts)
    q = _per_count(counts, lambda c: t_quantile(1.0 - delta / 2.0, c - 1) if c >= 2 else np.nan)
    cnt = counts.astype(np.float64)
    extra = (1,) * (np.ndim(variance) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (q * np.sqrt(1.0 / np.maximum(cnt, 1.0))).reshape(-1, *extra) * np.sqrt(variance)


def empirical_bernstein_radius(
    variance: np.ndarray, counts: np.ndarray, value_range: float, delta: float
) -> np.ndarray:
    """Empirical Bernstein radius (Maurer & Pontil 2009), as the Neuron Shapley code uses it.

    cb = sqrt(2 s^2 ln(2/delta) / n) + 7 R ln(2/delta) / (3 (n - 1)); inf where n < 2.
    """
    counts = np.asarray(counts, dtype=np.float64)
    log_term = math.log(2.0 / delta)
    extra = (1,) * (np.ndim(variance) - 1)
    cnt = counts.reshape(-1, *extra)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sqrt(2.0 * np.maximum(variance, 0.0) * log_term / cnt) + 7.0 * value_range * log_term / (
            3.0 * (cnt - 1.0)
        )
    return np.where(cnt >= 2, r, np.inf)


def hoeffding_radius(
    counts: np.ndarray, value_range: float, delta: float, shape: tuple[int, ...] = ()
) -> np.ndarray:
    """Hoeffding radius R sqrt(ln(2/delta) / (2 n)) (the original code's alternative); inf where n < 1."""
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = value_range * np.sqrt(math.log(2.0 / delta) / (2.0 * counts))
    r = np.where(counts >= 1, r, np.inf)
    return np.broadcast_to(r.reshape(-1, *((1,) * len(shape))), (len(counts), *shape)).copy()
