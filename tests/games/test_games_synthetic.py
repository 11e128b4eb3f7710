"""Synthetic games: closed forms checked against brute force, exact estimator, batching, subgames."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from onnxshap.estimators import estimate
from onnxshap.games import AdditiveGame, FewHubsGame, Game, GameError, InteractionGame, WeightedVotingGame


def brute_force_shapley(game: Game) -> np.ndarray:
    """Average marginal over all n! orders (independent of every estimator in the package)."""
    n = game.n_players
    phi = np.zeros((n, *game.value_shape))
    for order in itertools.permutations(range(n)):
        coal = np.zeros((n + 1, n), dtype=bool)
        for t, player in enumerate(order):
            coal[t + 1] = coal[t]
            coal[t + 1, player] = True
        vals = game(coal)
        for t, player in enumerate(order):
            phi[player] += vals[t + 1] - vals[t]
    return phi / math.factorial(n)


def small_games() -> dict[str, Game]:
    rng = np.random.default_rng(0)
    return {
        "additive": AdditiveGame(rng.normal(size=6), constant=0.3),
        "additive-vector": AdditiveGame(rng.normal(size=(6, 3))),
        "interaction": InteractionGame.random(6, 7, seed=1),
        "interaction-vector": InteractionGame.random(6, 7, seed=2, value_shape=(2, 2)),
        "voting": WeightedVotingGame([4, 3, 2, 2, 1, 1], quota=7, low=0.1, high=0.9),
        "few-hubs": FewHubsGame.make(n_players=6, n_hubs=2, n_items=40, seed=3, hub_weights=(9, 5)),
        "few-hubs-groups": FewHubsGame.make(n_players=6, n_hubs=2, n_items=40, n_groups=3, seed=4),
        "few-hubs-per-group": FewHubsGame.make(
            n_players=6, n_hubs=2, n_items=30, n_groups=3, seed=5, per_group=True
        ),
    }


def bigger_games() -> dict[str, Game]:
    return {
        "additive": AdditiveGame(np.linspace(-1, 2, 14)),
        "interaction": InteractionGame.random(13, 30, seed=7),
        "interaction-vector": InteractionGame.random(12, 20, seed=8, value_shape=(4,)),
        "voting": WeightedVotingGame([7, 5, 5, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1], quota=19),
        "few-hubs": FewHubsGame.make(n_players=14, n_hubs=3, n_items=200, seed=9),
        "few-hubs-per-group": FewHubsGame.make(
            n_players=12, n_hubs=3, n_items=90, n_groups=3, seed=10, per_group=True
        ),
    }


@pytest.mark.parametrize("name", list(small_games()))
def test_closed_form_matches_brute_force(name: str) -> None:
    game = small_games()[name]
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(bigger_games()))
def test_exact_estimator_matches_closed_form(name: str) -> None:
    game = bigger_games()[name]
    res = estimate(game, "exact", progress=False)
    truth = game.shapley_values()
    assert res.values.shape == truth.shape == (game.n_players, *game.value_shape)
    np.testing.assert_allclose(res.values, truth, rtol=0, atol=1e-9)
    # efficiency
    np.testing.assert_allclose(res.values.sum(axis=0), np.asarray(game.v_all) - game.v_empty, atol=1e-9)


@pytest.mark.parametrize("name", list(bigger_games()))
def test_values_do_not_depend_on_batch_size(name: str) -> None:
    game = bigger_games()[name]
    coal = np.random.default_rng(1).random((300, game.n_players)) < 0.5
    ref = game(coal)
    for bs in (1, 7, 64, 1000):
        game.batch_size = bs
        assert np.array_equal(game(coal), ref)


def test_few_hubs_make_is_heavy_tailed_and_collapses() -> None:
    game = FewHubsGame.make(n_players=120, n_hubs=8, n_items=300, seed=0)
    phi = game.shapley_values()
    top = np.argsort(-phi)[:8]
    assert phi[top].sum() > 0.4 * phi.sum()  # a few hubs carry a large share
    assert game.v_empty == pytest.approx(game.chance)
    assert game.value_range == pytest.approx(1 - game.chance)
    # removing half the players (the heaviest) drops the value to chance
    coal = np.ones(120, bool)
    coal[np.argsort(-phi)[:60]] = False
    assert game(coal) == pytest.approx(game.chance)


def test_few_hubs_subgame_is_a_random_batch() -> None:
    game = FewHubsGame.make(n_players=30, n_hubs=4, n_items=500, seed=1)
    a = game.subgame(np.random.default_rng(5), 50)
    b = game.subgame(np.random.default_rng(5), 50)
    c = game.subgame(np.random.default_rng(6), 50)
    assert len(a.quotas) == 50 and np.array_equal(a.quotas, b.quotas)
    assert not np.array_equal(a.quotas, c.quotas)
    assert game.subgame(np.random.default_rng(0), None) is game
    per = FewHubsGame.make(n_players=10, n_hubs=2, n_items=60, n_groups=3, seed=1, per_group=True)
    sub = per.subgame(np.random.default_rng(0), 9)
    assert sorted(np.bincount(sub.groups)) == [3, 3, 3]


def test_voting_game_shapley_shubik_known_case() -> None:
    # [3; 2, 1, 1]: player 0 is pivotal in 4 of 6 orders, the others in 1 each.
    game = WeightedVotingGame([2, 1, 1], quota=3)
    np.testing.assert_allclose(game.shapley_values(), [4 / 6, 1 / 6, 1 / 6], atol=1e-15)


def test_bad_synthetic_arguments() -> None:
    with pytest.raises(GameError, match="non-negative integers"):
        WeightedVotingGame([1.5, 2], quota=2)
    with pytest.raises(GameError, match="non-negative"):
        WeightedVotingGame([-1, 2], quota=2)
    with pytest.raises(GameError, match="distinct player indices"):
        InteractionGame(np.zeros(3), [[0, 0]], [1.0])
    with pytest.raises(GameError, match="pair_weights"):
        InteractionGame(np.zeros(3), [[0, 1]], [1.0, 2.0])
    with pytest.raises(GameError, match="groups"):
        FewHubsGame([[1, 2]], quotas=[1, 2], groups=[0, 3])
