"""Permutation, truncated and loo estimators: efficiency, convergence, coverage, batching, vectors."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.estimators import estimate
from onnxshap.games import FewHubsGame, FunctionGame, InteractionGame, WeightedVotingGame


def test_permutation_efficiency_holds_per_permutation() -> None:
    game = InteractionGame.random(9, 12, seed=1)
    res = estimate(game, "permutation", n_permutations=20, keep_samples=True, progress=False)
    total = game.v_all - game.v_empty
    assert res.marginals is not None and res.marginals.shape == (20, 9)
    np.testing.assert_allclose(res.marginals.sum(axis=1), total, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.values.sum(), total, atol=1e-12)
    assert res.evaluations == 2 + 20 * 8 == game.evaluations
    # each kept order is a permutation, and the marginal is v(before) - v(after) along it
    order = res.permutations[3]
    assert sorted(order) == list(range(9))
    coal = np.ones(9, bool)
    before = game(coal)
    for player in order[:3]:
        coal[player] = False
        after = game(coal)
        assert res.marginals[3, player] == pytest.approx(before - after, abs=1e-12)
        before = after


def test_antithetic_pairs_are_reversed_and_efficient() -> None:
    game = InteractionGame.random(7, 9, seed=2)
    res = estimate(game, "permutation", n_permutations=9, antithetic=True, keep_samples=True, progress=False)
    assert res.permutations.shape[0] == 10  # rounded up to pairs
    np.testing.assert_array_equal(res.permutations[1], res.permutations[0][::-1])
    np.testing.assert_allclose(res.values.sum(), game.v_all - game.v_empty, atol=1e-12)
    assert (res.samples == 10).all()


def _mean_abs_error(method: str, game, truth: np.ndarray, n_perm: int, seeds: range, **kw) -> float:
    errs = [
        np.abs(
            estimate(game, method, n_permutations=n_perm, seed=s, progress=False, **kw).values - truth
        ).mean()
        for s in seeds
    ]
    return float(np.mean(errs))


def test_permutation_error_shrinks_like_one_over_sqrt_samples() -> None:
    game = InteractionGame.random(8, 14, seed=3)
    truth = game.shapley_values()
    small = _mean_abs_error("permutation", game, truth, 25, range(12))
    large = _mean_abs_error("permutation", game, truth, 400, range(12))
    assert 2.5 < small / large < 6.5  # sqrt(400 / 25) = 4


def test_truncated_error_shrinks_like_one_over_sqrt_samples() -> None:
    # Voting games are monotone with two values: once the walk is at v(empty) every later marginal is 0,
    # so truncation is exact here and the estimator is unbiased.
    game = WeightedVotingGame([6, 5, 4, 3, 3, 2, 2, 1, 1, 1], quota=16)
    truth = game.shapley_values()
    small = _mean_abs_error("truncated", game, truth, 25, range(12), patience=2)
    large = _mean_abs_error("truncated", game, truth, 400, range(12), patience=2)
    assert 2.5 < small / large < 6.5


def test_truncation_saves_evaluations_and_zeroes_unreached_players() -> None:
    game = FewHubsGame.make(n_players=60, n_hubs=5, n_items=200, seed=2)
    plain = estimate(game, "permutation", n_permutations=32, progress=False)
    trunc = estimate(game, "truncated", n_permutations=32, keep_samples=True, progress=False)
    assert trunc.evaluations < 0.8 * plain.evaluations
    assert (trunc.samples == 32).all()  # unreached players still get a (zero) sample
    assert not np.isnan(trunc.marginals).any()
    assert (trunc.marginals == 0).sum() > (plain.values == 0).sum()
    top = set(np.argsort(-game.shapley_values())[:5])
    assert set(trunc.ranking()[:5]) == top


@pytest.mark.parametrize("delta", [0.1, 0.3])
def test_t_intervals_cover_at_the_nominal_rate(delta: float) -> None:
    game = InteractionGame.random(6, 8, seed=4)
    truth = game.shapley_values()
    covered = []
    for seed in range(200):
        res = estimate(game, "permutation", n_permutations=40, delta=delta, seed=seed, progress=False)
        covered.append((res.ci_low <= truth) & (truth <= res.ci_high))
    rate = np.mean(covered)
    assert abs(rate - (1 - delta)) < 0.04, rate


def test_truncated_intervals_cover_when_truncation_is_exact() -> None:
    game = WeightedVotingGame([5, 4, 3, 3, 2, 2, 1, 1], quota=12)
    truth = game.shapley_values()
    covered = []
    for seed in range(200):
        res = estimate(game, "truncated", n_permutations=60, delta=0.1, seed=seed, patience=1, progress=False)
        covered.append((res.ci_low <= truth) & (truth <= res.ci_high))
    assert abs(np.mean(covered) - 0.9) < 0.05


@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("permutation", {}),
        ("permutation", {"antithetic": True}),
        ("truncated", {}),
        ("truncated", {"images": 40}),
        ("tmab", {"top_k": 3}),
        ("tmab", {"top_k": 3, "images": 40}),
    ],
)
def test_results_do_not_depend_on_game_batch_size(method: str, kw: dict) -> None:
    results = []
    for bs in (1, 5, 1024):
        game = FewHubsGame.make(n_players=25, n_hubs=4, n_items=300, seed=5)
        game.batch_size = bs
        results.append(estimate(game, method, seed=11, n_permutations=40, progress=False, **kw))
    for other in results[1:]:
        for field in ("values", "ci_low", "ci_high", "samples"):
            assert np.array_equal(getattr(results[0], field), getattr(other, field), equal_nan=True), field
        assert other.evaluations == results[0].evaluations


@pytest.mark.parametrize("method", ["permutation", "truncated"])
def test_results_do_not_depend_on_round_size(method: str) -> None:
    game = FewHubsGame.make(n_players=20, n_hubs=3, n_items=100, seed=6)
    runs = [
        estimate(game, method, seed=3, n_permutations=30, permutations_per_round=p, progress=False)
        for p in (1, 7, 64)
    ]
    for other in runs[1:]:
        assert np.array_equal(runs[0].values, other.values)
        assert np.array_equal(runs[0].ci_high, other.ci_high)


def test_same_seed_same_result_other_seed_other_result() -> None:
    game = InteractionGame.random(8, 10, seed=7)
    a = estimate(game, "permutation", n_permutations=10, seed=1, progress=False)
    b = estimate(game, "permutation", n_permutations=10, seed=1, progress=False)
    c = estimate(game, "permutation", n_permutations=10, seed=2, progress=False)
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


def test_vector_game_modes_match_per_element_exact_values() -> None:
    game = InteractionGame.random(7, 10, seed=8, value_shape=(3, 2))
    exact = estimate(game, "exact", progress=False)
    res = estimate(game, "permutation", n_permutations=3000, delta=0.01, progress=False)
    assert res.values.shape == res.ci_low.shape == res.ci_high.shape == (7, 3, 2)
    assert res.samples.shape == (7,)
    np.testing.assert_allclose(res.values, exact.values, atol=0.15)
    assert ((res.ci_low <= exact.values) & (exact.values <= res.ci_high)).mean() > 0.95
    np.testing.assert_allclose(res.values.sum(axis=0), np.asarray(game.v_all) - game.v_empty, atol=1e-9)
    # truncated on a per-group accuracy game (Shapley modes of per-class accuracy)
    hubs = FewHubsGame.make(n_players=10, n_hubs=3, n_items=60, n_groups=3, seed=1, per_group=True)
    ex = estimate(hubs, "exact", progress=False)
    tr = estimate(hubs, "truncated", n_permutations=2000, tolerance=None, progress=False)
    np.testing.assert_allclose(tr.values, ex.values, atol=0.03)
    assert list(tr.ranking()[:3]) == list(ex.ranking()[:3])


def test_loo_values_and_documented_nan_interval() -> None:
    game = InteractionGame.random(6, 5, seed=9)
    res = estimate(game, "loo", top_k=2, progress=False)
    for i in range(6):
        coal = np.ones(6, bool)
        coal[i] = False
        assert res.values[i] == pytest.approx(game.v_all - game(coal), abs=1e-12)
    assert np.isnan(res.ci_low).all() and np.isnan(res.ci_high).all()
    assert (res.samples == 1).all()
    assert res.evaluations == 6 + 2
    assert list(res.top_k) == list(np.argsort(-res.values, kind="stable")[:2])


def test_budget_max_evals_and_max_seconds() -> None:
    game = InteractionGame.random(10, 10, seed=10)
    res = estimate(game, "permutation", max_evals=500, progress=False)
    assert 500 <= res.evaluations < 500 + 9 + 1
    assert res.metadata["stop_reason"] == "max_evals" and res.metadata["converged"] is False

    slow = FunctionGame(lambda c: (__import__("time").sleep(0.01), c.sum(1).astype(float))[1], 10)
    res = estimate(slow, "permutation", max_seconds=0.2, permutations_per_round=1, progress=False)
    assert res.metadata["stop_reason"] == "max_seconds"
    assert res.metadata["wall_seconds"] < 2.0
    # A round of 1,000 permutations (9,000 evaluations of 1 ms) is shrunk to the time left.
    per_eval = FunctionGame(
        lambda c: (__import__("time").sleep(1e-3 * len(c)), c.sum(1).astype(float))[1], 10
    )
    res = estimate(per_eval, "permutation", max_seconds=0.5, permutations_per_round=1000, progress=False)
    assert res.metadata["stop_reason"] == "max_seconds"
    assert res.metadata["permutations"] < 100 and res.metadata["wall_seconds"] < 5.0


def test_metadata_lists_every_parameter() -> None:
    game = InteractionGame.random(5, 3, seed=11)
    res = estimate(game, "truncated", seed=4, n_permutations=8, patience=3, progress=False)
    md = res.metadata
    assert md["estimator"] == "truncated" and md["seed"] == 4
    for name in (
        "delta",
        "tolerance",
        "patience",
        "images",
        "n_permutations",
        "permutations_per_round",
        "keep_samples",
        "value_range",
        "top_k",
        "max_evals",
        "max_seconds",
    ):
        assert name in md["params"], name
    assert md["params"]["patience"] == 3
    assert md["evaluations"] == res.evaluations and md["wall_seconds"] >= 0
    assert md["v_all"] == pytest.approx(game.v_all) and md["v_empty"] == pytest.approx(game.v_empty)
    # a permutation budget ran out: that is not convergence (no stop rule fired)
    assert md["converged"] is False and md["stop_reason"] == "n_permutations"
    assert md["guarantee"] == "none"
    assert md["value_range_source"] == "game"


def test_images_draw_one_data_batch_per_permutation() -> None:
    game = FewHubsGame.make(n_players=15, n_hubs=3, n_items=400, seed=12)
    res = estimate(game, "permutation", n_permutations=6, images=50, keep_samples=True, progress=False)
    full = estimate(game, "permutation", n_permutations=6, keep_samples=True, progress=False)
    # Same orders (drawn first from the permutation's generator), other data, so other marginals.
    np.testing.assert_array_equal(res.permutations, full.permutations)
    assert not np.allclose(res.marginals, full.marginals)
    # Efficiency holds per permutation on its own batch (v(all) = 1, v(empty) = chance on any batch).
    np.testing.assert_allclose(res.marginals.sum(axis=1), 0.9, atol=1e-12)
    assert res.evaluations == 2 + 6 * (14 + 2)  # each batch's v(all) and v(empty) are counted
