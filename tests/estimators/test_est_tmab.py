"""TMAB-Shapley: top-k identification, skipping of inactive players, bounds, vector games."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.estimators import estimate, walk_round
from onnxshap.games import AdditiveGame, FewHubsGame, FunctionGame, InteractionGame
from onnxshap.games.base import GameError


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


def test_student_t_is_a_heuristic_and_says_so() -> None:
    game = hubs_game()
    truth = set(np.argsort(-game.shapley_values())[:5])
    t = estimate(
        game, "tmab", top_k=5, seed=0, images=100, bound="student-t", max_evals=400_000, progress=False
    )
    assert t.metadata["guarantee"] == "none" and "heuristic" in t.metadata["guarantee_statement"]
    assert t.metadata["converged"] and set(t.top_k) == truth
    assert np.all(t.ci_high >= t.values) and np.all(t.ci_low <= t.values)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tmab_top_k_with_noisy_data_batches(seed: int) -> None:
    game = hubs_game()
    truth = set(np.argsort(-game.shapley_values())[:5])
    res = estimate(game, "tmab", top_k=5, seed=seed, images=100, max_evals=400_000, progress=False)
    assert res.metadata["converged"]
    assert set(res.top_k) == truth
    assert "random batches of 100 data items" in res.metadata["estimand"]


def test_tmab_on_vector_games_ranks_by_the_mean_over_elements() -> None:
    game = FewHubsGame.make(n_players=30, n_hubs=5, n_items=120, n_groups=3, seed=2, per_group=True)
    truth = game.shapley_values()
    res = estimate(game, "tmab", top_k=3, seed=0, max_evals=300_000, progress=False)
    assert res.values.shape == res.ci_low.shape == (30, 3)
    assert res.metadata["ranking_summary"] == "mean over elements"
    assert set(res.top_k) == set(np.argsort(-truth.mean(axis=1))[:3])
    assert (res.ci_low <= res.values).all() and (res.values <= res.ci_high).all()
    assert res.decision is not None and (res.decision[res.top_k] == 1).all() == res.metadata["converged"]


def test_per_unit_rule_keeps_the_original_intervals_and_union_bound_widens_them() -> None:
    game = InteractionGame.random(8, 10, seed=3)
    truth = game.shapley_values()
    covered = []
    for seed in range(60):
        res = estimate(
            game,
            "tmab",
            top_k=2,
            seed=seed,
            n_permutations=48,
            guarantee="per-unit",
            delta=0.2,
            progress=False,
        )
        covered.append((res.ci_low <= truth) & (truth <= res.ci_high))
    assert np.mean(covered) >= 0.8  # delta = 0.2 per player
    assert res.metadata["guarantee"] == "per-unit" and res.metadata["bound"] == "bernstein"
    kw = dict(top_k=2, n_permutations=32, guarantee="per-unit", delta=0.2, progress=False)
    plain = estimate(game, "tmab", **kw)
    union = estimate(game, "tmab", union_bound=True, **kw)
    assert union.metadata["delta_per_player"] == pytest.approx(0.2 / 8)
    assert ((union.ci_high - union.ci_low) >= (plain.ci_high - plain.ci_low) - 1e-12).all()


def test_epsilon_lets_a_tie_at_the_boundary_stop() -> None:
    game = AdditiveGame([5.0, 4.0, 3.0, 3.0, 0, 0, 0, 0])  # the 3rd and 4th tie
    stuck = estimate(game, "tmab", top_k=3, epsilon=0.0, max_evals=3000, progress=False)
    assert stuck.metadata["stop_reason"] == "max_evals" and not stuck.metadata["converged"]
    # the clear ones are certain already: two in, four out; the tied pair is undecided
    assert stuck.decision.tolist() == [1, 1, 0, 0, -1, -1, -1, -1]
    assert stuck.metadata["certain_in_top_k"] == 2
    assert stuck.metadata["settle_budget_estimate"]["ties"] <= 2
    done = estimate(game, "tmab", top_k=3, epsilon=0.5, max_evals=200_000, progress=False)
    assert done.metadata["stop_reason"] == "converged" and done.metadata["epsilon"] == 0.5
    assert set(done.top_k) in ({0, 1, 2}, {0, 1, 3})
    assert (done.decision == 1).sum() == 3 and (done.decision == -1).sum() == 5


def test_min_samples_bound_choice_and_defaults() -> None:
    game = InteractionGame.random(10, 8, seed=4)
    res = estimate(
        game, "tmab", top_k=3, min_samples=5, n_permutations=64, guarantee="per-unit", progress=False
    )
    assert res.samples.min() >= 5
    hoeff = estimate(game, "tmab", top_k=3, bound="hoeffding", n_permutations=32, progress=False)
    assert hoeff.metadata["params"]["bound"] == "hoeffding" and hoeff.metadata["guarantee"] == "per-unit"
    default = estimate(game, "tmab", n_permutations=16, progress=False)
    md = default.metadata
    assert md["params"]["top_k"] == 9  # min(100, n - 1)
    assert (md["params"]["delta"], md["params"]["tolerance"], md["params"]["epsilon"]) == (0.05, 0.2, 0.0)
    assert md["guarantee"] == "simultaneous" and md["bound"] == "betting"
    assert md["stop_reason"] == "n_permutations" and md["converged"] is False


def test_tmab_derives_r_from_the_game_or_warns() -> None:
    game = FunctionGame(lambda c: c[:, :3].sum(1) * 1.0 + c.sum(1) * 0.01, 12)
    with pytest.warns(UserWarning, match="value_range"):
        res = estimate(game, "tmab", top_k=3, n_permutations=16, progress=False)
    assert res.metadata["value_range_source"] == "|v_all - v_empty|"
    assert res.metadata["value_range"] == pytest.approx(3.12)
    assert res.metadata["guarantee"] == "none" and "guess" in res.metadata["guarantee_statement"]
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
    game.monotone = False  # the linear step-by-step walk (a monotone game's walk skips flat stretches)
    for images in (None, 30):
        fast = walk_round(game, range(6), seed=3, images=images)  # blocks of steps per call
        stepwise = walk_round(game, range(6), seed=3, images=images, active=np.ones(40, bool))
        assert np.array_equal(fast.marginals, stepwise.marginals)
        assert fast.evaluations == stepwise.evaluations
        assert np.array_equal(fast.orders, stepwise.orders)


def test_rotation_groups_walk_one_order_rotated_then_independent_orders() -> None:
    game = FewHubsGame.make(n_players=30, n_hubs=3, n_items=100, seed=4)
    _ = game.v_empty
    out = walk_round(game, range(8), seed=2, rotations=3, rotated_walks=6)
    o = out.orders
    for r in range(8):
        assert sorted(o[r]) == list(range(30))  # each walk is a permutation
    assert np.array_equal(o[1], np.roll(o[0], -10)) and np.array_equal(o[2], np.roll(o[0], -20))
    assert np.array_equal(o[4], np.roll(o[3], -10))
    assert not np.array_equal(o[6], np.roll(o[5], -10)) and not np.array_equal(o[7], np.roll(o[6], -10))
    assert out.indices.tolist() == list(range(8))
    # a unit is removed once in each third of the walk within a group
    pos = np.argsort(o[:3], axis=1)
    assert (np.sort(pos // 10, axis=0) == np.arange(3)[:, None]).all()


def test_tmab_groups_the_first_walks_and_counts_marginals() -> None:
    game = InteractionGame.random(9, 8, seed=6)
    res = estimate(game, "tmab", top_k=2, n_permutations=60, tolerance=None, progress=False)
    md = res.metadata
    assert md["permutations"] == 60 and md["params"]["rotations"] == 3
    # 48 walks in 16 groups (one sample each), then 12 single walks: 28 samples, 60 marginals per unit
    assert (res.samples == 60).all()
    plain = estimate(game, "tmab", top_k=2, n_permutations=60, tolerance=None, rotations=1, progress=False)
    assert (plain.samples == 60).all() and not np.array_equal(plain.values, res.values)


def test_a_game_that_claims_monotone_and_is_not_is_refused() -> None:
    class Liar(FunctionGame):
        monotone = True

    game = Liar(lambda c: 1.0 - c[:, :3].sum(1) / 3.0, 6, value_range=1.0)  # removing players raises it
    with pytest.raises(GameError, match="states monotone=True, but a marginal of"):
        estimate(game, "tmab", top_k=2, n_permutations=8, progress=False)
    hubs = FewHubsGame.make(n_players=20, n_hubs=3, n_items=100, seed=2, chance=0.0)
    res = estimate(hubs, "tmab", top_k=3, n_permutations=16, progress=False)
    assert res.metadata["marginal_range"] == [0.0, 1.0] and "monotone" in res.metadata["guarantee_statement"]
