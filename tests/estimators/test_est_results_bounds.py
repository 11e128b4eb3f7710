"""Result type save/load/ranking, bounds and running moments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxshap.estimators import ShapleyResult, estimate
from onnxshap.estimators.bounds import empirical_bernstein_radius, t_halfwidth, t_quantile
from onnxshap.estimators.stats import RunningMoments
from onnxshap.games import FewHubsGame, InteractionGame


def test_result_save_load_round_trip(tmp_path) -> None:
    game = FewHubsGame.make(n_players=12, n_hubs=3, n_items=60, n_groups=2, seed=0, per_group=True)
    res = estimate(game, "permutation", top_k=4, n_permutations=5, keep_samples=True, progress=False)
    npz, js = res.save(tmp_path / "run" / "shapley")
    assert npz.name == "shapley.npz" and js.name == "shapley.json"
    doc = json.loads(js.read_text())
    assert doc["metadata"]["estimator"] == "permutation"
    for path in (tmp_path / "run" / "shapley", npz, js):
        back = ShapleyResult.load(path)
        for field in ("values", "ci_low", "ci_high", "samples", "top_k", "marginals", "permutations"):
            assert np.array_equal(getattr(back, field), getattr(res, field), equal_nan=True), field
        assert back.evaluations == res.evaluations
        assert back.metadata["params"] == json.loads(json.dumps(res.metadata["params"]))
    assert not list((tmp_path / "run").glob("*.tmp"))
    with pytest.raises(FileNotFoundError):
        ShapleyResult.load(tmp_path / "missing")


def test_decisions_are_saved_and_loaded_with_the_result(tmp_path) -> None:
    game = FewHubsGame.make(n_players=20, n_hubs=3, n_items=100, seed=2, chance=0.0)
    res = estimate(game, "tmab", top_k=3, max_evals=200_000, progress=False)
    assert res.decision is not None and res.decision.dtype == np.int8
    res.save(tmp_path / "r")
    back = ShapleyResult.load(tmp_path / "r")
    assert np.array_equal(back.decision, res.decision)
    assert back.metadata["decisions"] == res.metadata["decisions"]
    plain = estimate(game, "permutation", n_permutations=4, progress=False)
    assert plain.decision is None  # no top-k rule
    plain.save(tmp_path / "p")
    assert ShapleyResult.load(tmp_path / "p").decision is None


def test_ranking_and_top_k_use_the_mean_over_elements_for_vectors() -> None:
    values = np.array([[1.0, 3.0], [5.0, 0.0], [2.0, 2.5]])
    res = ShapleyResult(values, values, values, np.ones(3, int), None, 0)
    assert list(res.ranking()) == [1, 2, 0]
    assert res.value_shape == (2,) and res.n_players == 3
    assert "n_players=3" in repr(res)


def test_t_quantile_matches_known_values() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.706204736, rel=1e-8)
    assert t_quantile(0.975, 10) == pytest.approx(2.228138852, rel=1e-8)
    assert t_quantile(0.95, 30) == pytest.approx(1.697260887, rel=1e-8)
    assert t_quantile(0.025, 5) == pytest.approx(-2.570581836, rel=1e-8)
    scipy_stats = pytest.importorskip("scipy.stats")
    for p in (0.6, 0.9, 0.995):
        for df in (1, 2, 3, 7, 39, 500, 10_000):
            assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9)


def test_t_halfwidth_and_bernstein_radius() -> None:
    var = np.array([4.0, 4.0, 1.0])
    counts = np.array([10, 1, 3])
    half = t_halfwidth(var, counts, 0.05)
    assert half[0] == pytest.approx(2.262157163 * 2 / np.sqrt(10), rel=1e-8)
    assert np.isnan(half[1])
    r = empirical_bernstein_radius(var, counts, 1.0, 0.2)
    log = np.log(2 / 0.2)
    assert r[0] == pytest.approx(np.sqrt(2 * 4 * log / 10) + 7 * log / (3 * 9))
    assert r[1] == np.inf


def test_running_moments_match_numpy_with_masks() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4, 3))
    mask = rng.random((50, 4)) < 0.7
    rm = RunningMoments(4, (3,))
    for row, m in zip(x, mask, strict=True):
        rm.update(row, m)
    for i in range(4):
        xs = x[mask[:, i], i]
        assert rm.count[i] == len(xs)
        np.testing.assert_allclose(rm.mean[i], xs.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(rm.variance()[i], xs.var(axis=0, ddof=1), rtol=1e-10)
    empty = RunningMoments(2)
    assert np.isnan(empty.variance()).all()


def test_exact_result_has_zero_width_intervals() -> None:
    game = InteractionGame.random(5, 4, seed=1)
    res = estimate(game, "exact", top_k=2, progress=False)
    assert np.array_equal(res.ci_low, res.values) and np.array_equal(res.ci_high, res.values)
    assert (res.samples == 16).all() and res.evaluations == 32 + 2
    assert res.metadata["converged"] and res.metadata["stop_reason"] == "complete"
