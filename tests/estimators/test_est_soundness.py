"""tmab's statistical promise, checked against exact values over many seeds, and what it costs.

The default guarantee ("simultaneous") says: with probability >= 1 - delta every interval holds its
unit's value at every round at once, so every "certain" decision is right. Checked here on small games
whose exact values are known, against the Shapley value itself: without truncation (tolerance=None) on
games with interactions, and with truncation on voting games, where truncation is exact (the value
stays at v(empty) once it gets there, so the truncated Shapley value is the Shapley value).
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.estimators import estimate, walk_round
from onnxshap.games import FewHubsGame, FunctionGame, InteractionGame, WeightedVotingGame

DELTA = 0.1


def _cases() -> list[tuple[object, dict, int]]:
    """(game, tmab parameters, k) for >= 50 runs: 3 game families, varied seeds."""
    cases = []
    for seed in range(20):
        cases.append((InteractionGame.random(8, 10, seed=seed), {"tolerance": None}, 3))
    rng = np.random.default_rng(7)
    for _ in range(20):
        weights = rng.integers(1, 8, size=9)
        game = WeightedVotingGame(weights, quota=int(weights.sum() * rng.uniform(0.4, 0.7)))
        cases.append((game, {"patience": 1}, 3))
    for seed in range(12):
        # a data batch per walk: the estimand is the expectation over batches, which for an accuracy
        # (a mean over items) is the Shapley value on all items, since Shapley values are linear
        game = FewHubsGame.make(n_players=10, n_hubs=3, n_items=80, seed=seed, chance=0.0)
        cases.append((game, {"tolerance": None, "images": 40}, 2))
    return cases


def _wrong(decision: np.ndarray, truth: np.ndarray, k: int) -> bool:
    s = np.sort(truth)[::-1]
    tol = 1e-9
    wrong_in = (decision == 1) & (truth < s[k - 1] - tol)
    wrong_out = (decision == -1) & (truth > s[k] + tol)
    return bool((wrong_in | wrong_out).any())


@pytest.mark.slow
def test_certain_decisions_are_wrong_in_at_most_delta_of_runs_and_intervals_cover_jointly() -> None:
    cases = _cases()
    assert len(cases) >= 50
    wrong, covered, decided, converged = [], [], [], []
    for i, (game, params, k) in enumerate(cases):
        truth = game.shapley_values()  # type: ignore[attr-defined]
        res = estimate(game, "tmab", top_k=k, seed=i, delta=DELTA, max_evals=30_000, progress=False, **params)
        assert res.metadata["guarantee"] == "simultaneous"
        wrong.append(_wrong(res.decision, truth, k))
        covered.append(bool(((res.ci_low <= truth + 1e-12) & (truth - 1e-12 <= res.ci_high)).all()))
        decided.append(int((res.decision != 0).sum()))
        converged.append(res.metadata["converged"])
    assert np.mean(wrong) <= DELTA, np.mean(wrong)
    assert np.mean(covered) >= 1 - DELTA, np.mean(covered)
    # and the test has teeth: most runs decide most units, many converge
    assert np.mean(decided) >= 0.6 * 8 and np.mean(converged) >= 0.5


def test_truncation_is_relative_to_the_swing_of_the_game_not_to_r() -> None:
    # A gap-like metric: values in a range R = 1, but v(all) - v(empty) = 0.1 (<= 0.2 R). A threshold of
    # 0.2 R would cut every walk at once and hand out zeros; 0.2 x 0.1 keeps the walks where the value is.
    voting = WeightedVotingGame([6, 5, 4, 3, 3, 2, 2, 1, 1, 1], quota=16)
    game = FunctionGame(lambda c: 0.45 + 0.1 * voting(c), 10, value_range=1.0)
    truth = 0.1 * voting.shapley_values()
    res = estimate(game, "truncated", n_permutations=600, seed=0, progress=False)
    assert res.metadata["truncation_threshold"] == pytest.approx(0.02)
    np.testing.assert_allclose(res.values, truth, atol=0.006)
    distinct = np.argsort(-truth, kind="stable")[:3]  # weights 6, 5, 4: distinct values
    assert list(res.ranking()[:3]) == list(distinct)
    top = estimate(game, "tmab", top_k=3, seed=0, max_evals=300_000, progress=False)
    assert top.metadata["converged"] and set(top.top_k) == set(distinct.tolist())
    assert top.metadata["guarantee"] == "simultaneous"


def test_truncation_point_does_not_depend_on_the_active_set() -> None:
    # Checks every `check_every` removals, evaluated whatever is active: a unit's truncated marginal in a
    # given walk is the same whether or not other units are skipped (so its samples keep one law).
    game = FewHubsGame.make(n_players=40, n_hubs=5, n_items=200, seed=3)
    _ = game.v_empty
    full = walk_round(game, range(8), seed=5, truncation=0.15, patience=2, check_every=3)
    active = np.zeros(40, dtype=bool)
    active[::3] = True
    part = walk_round(game, range(8), seed=5, truncation=0.15, patience=2, check_every=3, active=active)
    assert np.array_equal(part.marginals[:, active], full.marginals[:, active])
    assert np.array_equal(part.sampled[:, active], full.sampled[:, active])
    assert not part.sampled[:, ~active].any()
    assert part.evaluations < full.evaluations


def test_elimination_pays_and_is_reported_per_round() -> None:
    game = FewHubsGame.make(n_players=60, n_hubs=4, n_items=200, seed=1, chance=0.0)
    res = estimate(game, "tmab", top_k=4, seed=0, max_evals=400_000, progress=False)
    md = res.metadata
    assert md["converged"] and md["decisions"] == {"in": 4, "out": 56, "undecided": 0}
    per_round = md["evaluations_per_permutation_by_round"]
    assert md["evaluations_per_permutation_first_round"] == per_round[0]
    assert md["evaluations_per_permutation_last_round"] < 0.6 * per_round[0]
    assert md["active_by_round"][0] == 60 and md["active_by_round"][-1] < 60
    # decided units stopped being sampled
    assert res.samples[res.decision == -1].min() < res.samples.max()
