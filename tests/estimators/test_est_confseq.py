"""Confidence sequences: anytime coverage, widths, the stitched boundary, checkpointable state."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.estimators.confseq import (
    KINDS,
    BettingCS,
    from_unit,
    make_sequences,
    stitched_boundary,
    to_unit,
)


def _streams(seeds: int, steps: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, float]]:
    return {
        "bernoulli": ((rng.random((seeds, steps)) < 0.3).astype(float), 0.3),
        "beta": (rng.beta(2.0, 5.0, (seeds, steps)), 2.0 / 7.0),
        "sparse": (np.where(rng.random((seeds, steps)) < 0.05, 0.9, 0.5), 0.5 + 0.05 * 0.4),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_running_intervals_cover_the_mean_at_every_time(kind: str) -> None:
    # 300 independent streams as 300 units, checked after every sample: the share of streams whose
    # interval ever misses the mean stays below alpha (the sequences are conservative: well below).
    rng = np.random.default_rng(0)
    alpha = 0.1
    for name, (x, mean) in _streams(300, 300, rng).items():
        cs = make_sequences(kind, x.shape[0], alpha)
        missed = np.zeros(x.shape[0], dtype=bool)
        for t in range(x.shape[1]):
            cs.update(x[:, t])
            cs.refresh()
            missed |= (cs.lo > mean) | (cs.hi < mean)
        assert missed.mean() <= alpha, (kind, name, missed.mean())
        assert (cs.hi - cs.lo).mean() < 0.35, (kind, name)  # and they do shrink
        assert (cs.count == x.shape[1]).all()


def test_betting_is_narrowest_on_samples_that_sit_on_one_value() -> None:
    # A unit whose marginals are all 0 (as truncation hands out): the range term decides the width.
    widths = {}
    for kind in KINDS:
        cs = make_sequences(kind, 1, 0.05 / 3000)
        for _ in range(500):
            cs.update(np.array([0.5]))
        cs.refresh()
        widths[kind] = float(cs.hi[0] - cs.lo[0])
    assert widths["betting"] < 0.6 * widths["plugin-bernstein"] < 0.6 * widths["stitched"]
    assert widths["betting"] < 0.03


def test_stitched_boundary_matches_the_confseq_package() -> None:
    # values of confseq.boundaries.poly_stitching_bound(v, alpha, v_min=1, c=1, s=1.4, eta=2)
    v = np.array([1.0, 10.0, 100.0, 1e4])
    np.testing.assert_allclose(
        stitched_boundary(v, 0.05), [10.75891454, 20.98264612, 47.26082566, 411.83954008], rtol=1e-8
    )
    np.testing.assert_allclose(stitched_boundary(np.array([100.0]), 1e-5), [78.22113958], rtol=1e-8)


def test_masks_state_and_mapping() -> None:
    rng = np.random.default_rng(1)
    cs = BettingCS(4, 0.01)
    x = rng.random((50, 4))
    mask = rng.random((50, 4)) < 0.6
    for row, m in zip(x, mask, strict=True):
        cs.update(row, m)
    cs.refresh()
    assert cs.count.tolist() == mask.sum(axis=0).tolist()
    np.testing.assert_allclose(cs.mean, [x[mask[:, i], i].mean() for i in range(4)])
    copy = BettingCS(4, 0.01)
    copy.load(cs.state("cs_"), "cs_")
    for a, b in ((copy.lo, cs.lo), (copy.log_k_plus, cs.log_k_plus), (copy.sum_sq, cs.sum_sq)):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cs.update(np.array([0.5, 1.5, 0.5, 0.5]))
    x = np.array([-2.0, 0.0, 1.0])
    np.testing.assert_allclose(from_unit(to_unit(x, -2.0, 2.0), -2.0, 2.0), x)
    assert to_unit(np.array([0.0, 1.0]), 0.0, 4.0).tolist() == [0.0, 0.25]
    with pytest.raises(ValueError, match="unknown confidence sequence"):
        make_sequences("chernoff", 3, 0.1)
