"""TMAB-Shapley: top-k identification, skipping of inactive players, bounds, vector games."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.estimators import estimate, walk_round
from onnxshap.games import AdditiveGame, FewHubsGame, FunctionGame, InteractionGame


def hubs_game() -> FewHubsGame:
    # 6 hubs with distinct weights 40..10 among 50 light players: the 6th hub is the threshold player.
    return FewHubsGame.make(n_players=50, n_hubs=6, n_items=300, seed=0)


def test_tmab_finds_the_true_top_k_on_the_few_hubs_game() -> None:
    game = hubs_game()
    truth = set(np.argsort(-game.shapley_values())[:5])
    res = estimate(game, "tmab", top_k=5, seed=0, progress=False)
    assert res.metadata["converged"] is True and res.metadata["stop_reason"] == "converged"
    assert set(res.top_k) == truth
    assert list(res.top_k) == list(res.ranking()[:5])
    # cheaper than walking every permutation in full
    perms = res.metadata["permutations"]
    assert res.evaluations < 0.5 * perms * (game.n_players - 1)
    # inactive players stopped being sampled: the threshold's neighbourhood got the most samples
    assert res.samples.max() >= 2 * np.median(res.samples)
    assert res.metadata["n_active"] <= 2


def test_student_t_radius_converges_sooner_to_the_same_top_k() -> None:
    game = hubs_game()
    truth = set(np.argsort(-game.shapley_values())[:5])
    bern = estimate(game, "tmab", top_k=5, seed=0, images=100, max_evals=400_000, progress=False)
    t = estimate(
        game, "tmab", top_k=5, seed=0, images=100, bound="student-t", max_evals=400_000, progress=False
    )
    assert t.metadata["converged"] and set(t.top_k) == truth
    assert t.evaluations < bern.evaluations / 4  # ~10x fewer here: no 7 R ln(2/delta) / 3(n-1) term
    assert np.all(t.ci_high >= t.values) and np.all(t.ci_low <= t.values)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tmab_top_k_with_noisy_data_batches(seed: int) -> None:
    game = hubs_game()
    truth = set(np.argsort(-game.shapley_values())[:5])
    res = estimate(game, "tmab", top_k=5, seed=seed, images=100, max_evals=400_000, progress=False)
    assert res.metadata["converged"]
    assert set(res.top_k) == truth


def test_tmab_on_vector_games_ranks_by_the_mean_over_elements() -> None:
    game = FewHubsGame.make(n_players=30, n_hubs=5, n_items=120, n_groups=3, seed=2, per_group=True)
    truth = game.shapley_values()
    res = estimate(game, "tmab", top_k=3, seed=0, max_evals=300_000, progress=False)
    assert res.values.shape == res.ci_low.shape == (30, 3)
    assert res.metadata["ranking_summary"] == "mean over elements"
    assert set(res.top_k) == set(np.argsort(-truth.mean(axis=1))[:3])
    assert (res.ci_low <= res.values).all() and (res.values <= res.ci_high).all()


def test_tmab_intervals_are_conservative_and_union_bound_widens_them() -> None:
    game = InteractionGame.random(8, 10, seed=3)
    truth = game.shapley_values()
    covered = []
    for seed in range(60):
        res = estimate(game, "tmab", top_k=2, seed=seed, n_permutations=48, progress=False)
        covered.append((res.ci_low <= truth) & (truth <= res.ci_high))
    assert np.mean(covered) >= 0.8  # delta = 0.2 per player
    plain = estimate(game, "tmab", top_k=2, n_permutations=32, progress=False)
    union = estimate(game, "tmab", top_k=2, n_permutations=32, union_bound=True, progress=False)
    assert union.metadata["delta_per_player"] == pytest.approx(0.2 / 8)
    assert ((union.ci_high - union.ci_low) >= (plain.ci_high - plain.ci_low) - 1e-12).all()


def test_epsilon_guarantees_termination_on_ties() -> None:
    game = AdditiveGame([5.0, 4.0, 3.0, 0, 0, 0, 0, 0])  # the threshold (4th) ties with 4 dummies
    stuck = estimate(game, "tmab", top_k=3, epsilon=0.0, max_evals=3000, progress=False)
    assert stuck.metadata["stop_reason"] == "max_evals" and not stuck.metadata["converged"]
    done = estimate(game, "tmab", top_k=3, epsilon=0.5, max_evals=200_000, progress=False)
    assert done.metadata["stop_reason"] == "converged"
    assert set(done.top_k) == {0, 1, 2}


def test_min_samples_bound_choice_and_defaults() -> None:
    game = InteractionGame.random(10, 8, seed=4)
    res = estimate(game, "tmab", top_k=3, min_samples=5, n_permutations=64, progress=False)
    assert res.samples.min() >= 5
    hoeff = estimate(game, "tmab", top_k=3, bound="hoeffding", n_permutations=32, progress=False)
    assert hoeff.metadata["params"]["bound"] == "hoeffding"
    default = estimate(game, "tmab", n_permutations=16, progress=False)
    assert default.metadata["params"]["top_k"] == 9  # min(100, n - 1)
    md = default.metadata["params"]
    assert (md["delta"], md["tolerance"], md["patience"]) == (0.2, 0.2, 6)  # the original's defaults


def test_tmab_derives_r_from_the_game_or_warns() -> None:
    game = FunctionGame(lambda c: c[:, :3].sum(1) * 1.0 + c.sum(1) * 0.01, 12)
    with pytest.warns(UserWarning, match="value_range"):
        res = estimate(game, "tmab", top_k=3, n_permutations=16, progress=False)
    assert res.metadata["value_range_source"] == "|v_all - v_empty|"
    assert res.metadata["value_range"] == pytest.approx(3.12)
    ranged = FunctionGame(lambda c: c[:, :3].sum(1) * 1.0, 12, value_range=3.0)
    res = estimate(ranged, "tmab", top_k=3, n_permutations=16, progress=False)
    assert res.metadata["value_range_source"] == "game" and res.metadata["value_range"] == 3.0
    res = estimate(ranged, "tmab", top_k=3, value_range=5.0, n_permutations=16, progress=False)
    assert res.metadata["value_range_source"] == "parameter"


def test_walk_skips_inactive_players_without_evaluating_them() -> None:
    seen: list[np.ndarray] = []
    base = InteractionGame.random(9, 6, seed=5)

    def spy(c: np.ndarray) -> np.ndarray:
        seen.append(c.copy())
        return base(c)

    game = FunctionGame(spy, 9, batch_size=1)
    active = np.zeros(9, bool)
    active[[1, 4, 7]] = True
    _ = game.v_empty  # v(all), v(empty) belong to the estimator's start, not to the walk
    seen.clear()
    out = walk_round(game, [0, 1, 2], seed=3, active=active)
    assert (out.sampled == active[None, :]).all()  # only active players get samples
    # at most 2 evaluations per active player (the coalition before it, if stale, and after it)
    assert out.evaluations == sum(len(c) for c in seen) <= 3 * 3 * 2
    for r in range(3):
        coal = np.ones(9, bool)
        for player in out.orders[r]:
            if active[player]:
                before = base(coal)
                coal[player] = False
                assert out.marginals[r, player] == pytest.approx(before - base(coal), abs=1e-12)
            else:
                coal[player] = False
                assert out.marginals[r, player] == 0


def test_walk_truncation_counts_consecutive_removals_near_v_empty() -> None:
    # Value = number of the first two players present; everything else is a dummy.
    game = FunctionGame(lambda c: c[:, :2].sum(1).astype(float), 12, value_range=2.0)
    _ = game.v_empty
    out = walk_round(game, range(8), seed=0, truncation=0.0, patience=3)
    expected = 0
    for r in range(8):
        order = list(out.orders[r])
        last_real = max(order.index(0), order.index(1))
        # The removal of the last real player reaches v(empty) (1 of 3), two more removals, stop;
        # the final removal (to the empty set) needs no evaluation.
        expected += min(11, last_real + 3)
        assert out.sampled[r].all()  # unreached players count a zero sample
        assert out.marginals[r, 0] == 1.0 and out.marginals[r, 1] == 1.0
        assert (out.marginals[r, 2:] == 0).all()
    assert out.evaluations == expected
    assert walk_round(game, range(8), seed=0).evaluations == 8 * 11


def test_untruncated_walks_batch_steps_without_changing_a_bit() -> None:
    game = FewHubsGame.make(n_players=40, n_hubs=5, n_items=200, seed=1)
    for images in (None, 30):
        fast = walk_round(game, range(6), seed=3, images=images)  # blocks of steps per call
        stepwise = walk_round(game, range(6), seed=3, images=images, active=np.ones(40, bool))
        assert np.array_equal(fast.marginals, stepwise.marginals)
        assert fast.evaluations == stepwise.evaluations
        assert np.array_equal(fast.orders, stepwise.orders)
