"""Grouped, lesioned and merged-pair games equal the exact Shapley values of the game they stand for."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from onnxshap import estimate
from onnxshap.games import FunctionGame, InteractionGame
from onnxshap.games.base import GameError
from onnxshap.games.grouped import GroupedGame, LesionedGame, merged_pair


def brute_shapley(v, n: int) -> np.ndarray:
    """Shapley values by the subset formula, v called on one boolean coalition at a time."""
    phi = np.zeros(n)
    for i in range(n):
        others = [p for p in range(n) if p != i]
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for s in itertools.combinations(others, size):
                c = np.zeros(n, bool)
                c[list(s)] = True
                without = v(c)
                c[i] = True
                phi[i] += w * (v(c) - without)
    return phi


@pytest.fixture(scope="module")
def inner() -> InteractionGame:
    return InteractionGame.random(9, 14, seed=3)


def test_grouped_values_are_exact_values_of_the_grouped_game(inner) -> None:
    groups = [[0, 4], [1], [2, 3, 8], [6]]  # player 5 is in no group (always present), 7 absent
    game = GroupedGame(inner, groups, absent=[7])

    def v(c: np.ndarray) -> float:
        units = np.ones(9, bool)
        units[7] = False
        for g, members in enumerate(groups):
            units[members] = c[g]
        return float(inner(units[None])[0])

    want = brute_shapley(v, len(groups))
    got = estimate(game, "exact", progress=False).values
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    assert game.n_players == 4 and game.value_range == inner.value_range
    expanded = game.expand(np.array([[True, False, True, False]]))[0]
    np.testing.assert_array_equal(expanded, [1, 0, 1, 1, 1, 1, 0, 0, 1])


def test_lesioned_values_are_exact_values_of_the_reduced_game(inner) -> None:
    lesioned = [2, 5]
    game = LesionedGame(inner, lesioned)
    rest = [p for p in range(9) if p not in lesioned]

    def v(c: np.ndarray) -> float:
        units = np.zeros(9, bool)
        units[rest] = c
        return float(inner(units[None])[0])

    np.testing.assert_array_equal(game.remaining, rest)
    np.testing.assert_allclose(estimate(game, "exact", progress=False).values, brute_shapley(v, 7), atol=1e-9)


def test_merged_pair_is_one_player(inner) -> None:
    game, at = merged_pair(inner, 6, 1)
    assert at == 1 and game.n_players == 8
    np.testing.assert_array_equal(game.groups[1], [1, 6])
    # efficiency: the merged player's value is what the pair adds when it plays as one
    res = estimate(game, "exact", progress=False)
    assert res.values.sum() == pytest.approx(inner.v_all - inner.v_empty, abs=1e-9)


def test_bad_groups_are_refused(inner) -> None:
    with pytest.raises(GameError, match="disjoint"):
        GroupedGame(inner, [[0, 1], [1, 2]])
    with pytest.raises(GameError, match="empty"):
        GroupedGame(inner, [[0], []])
    with pytest.raises(GameError, match="both in a group and absent"):
        GroupedGame(inner, [[0, 1]], absent=[1])
    with pytest.raises(GameError, match="every player"):
        LesionedGame(FunctionGame(lambda c: c.sum(1), 2), [0, 1])


def test_subgame_passes_through_to_the_data_batch() -> None:
    from pathlib import Path

    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    models = Path(__file__).resolve().parents[2] / "models"
    inst = instrument(models / "digits_cnn_torch.onnx", provider="cpu")
    data = np.load(models / "digits_test.npz")
    unit_game = OnnxGame(inst, data["x"][:60], data["y"][:60])
    game = GroupedGame(unit_game, [range(0, 16), range(16, 48), range(48, 80)])
    sub = game.subgame(np.random.default_rng(0), 20)
    assert isinstance(sub, GroupedGame) and sub.game.n_items == 20 and sub is not game
    coal = np.array([[True, False, True]])
    np.testing.assert_array_equal(sub(coal), sub.game(game.expand(coal)))
    assert game.subgame(np.random.default_rng(0), 100) is game
