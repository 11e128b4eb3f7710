"""Game base class and FunctionGame: validation, chunking, counting, caching."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.games import FunctionGame, Game, GameError


def test_function_game_infers_shape_and_caches_v_all() -> None:
    calls: list[int] = []

    def fn(c: np.ndarray) -> np.ndarray:
        calls.append(len(c))
        return np.stack([c.sum(1), c[:, 0] * 2.0], axis=1)

    game = FunctionGame(fn, 5, batch_size=3)
    assert game.value_shape == (2,)
    assert calls == [1] and game.evaluations == 1
    np.testing.assert_array_equal(game.v_all, [5.0, 2.0])
    assert calls == [1]  # cached, no new call
    out = game(np.ones((7, 5), bool))
    assert out.shape == (7, 2) and out.dtype == np.float64
    assert calls == [1, 3, 3, 1] and game.evaluations == 8  # chunked by batch_size
    np.testing.assert_array_equal(game.v_empty, [0.0, 0.0])
    assert game.evaluations == 9


def test_scalar_game_values_are_floats_and_single_coalitions_work() -> None:
    game = FunctionGame(lambda c: c.sum(1) * 0.5, 4)
    assert game.value_shape == ()
    assert isinstance(game.v_all, float) and game.v_all == 2.0
    assert game(np.array([1, 0, 1, 0])) == pytest.approx(1.0)
    assert game(np.zeros((0, 4), bool)).shape == (0,)


def test_bad_inputs_and_outputs_are_reported() -> None:
    game = FunctionGame(lambda c: c.sum(1).astype(float), 3)
    with pytest.raises(GameError, match=r"shape \[m, 3\]"):
        game(np.ones((2, 4), bool))
    with pytest.raises(GameError, match="boolean"):
        game(np.full((2, 3), 0.5))
    bad_shape = FunctionGame(lambda c: np.zeros((len(c), 2)), 3, value_shape=())
    with pytest.raises(GameError, match="expected"):
        bad_shape(np.ones((2, 3), bool))
    nan_game = FunctionGame(lambda c: np.where(c[:, 0], np.nan, 1.0), 3, value_shape=())
    with pytest.raises(GameError, match="non-finite value for coalition 1"):
        nan_game(np.array([[False, True, True], [True, True, True]]))
    with pytest.raises(GameError, match="one value per coalition"):
        FunctionGame(lambda c: 1.0, 3)
    with pytest.raises(GameError, match="n_players"):
        FunctionGame(lambda c: c.sum(1), 0)
    with pytest.raises(GameError, match="callable"):
        FunctionGame(3, 2)  # type: ignore[arg-type]
    with pytest.raises(GameError, match="value_range"):
        FunctionGame(lambda c: c.sum(1), 2, value_range=-1.0)


def test_subclass_needs_only_evaluate_and_subgame_defaults_to_self() -> None:
    class Count(Game):
        def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
            return coalitions.sum(axis=1).astype(float)

    game = Count(4, batch_size=2, value_range=4.0)
    assert game.subgame(np.random.default_rng(0), 10) is game
    np.testing.assert_array_equal(game(np.ones((3, 4), bool)), [4, 4, 4])
    assert game.evaluations == 3
    assert "Count(n_players=4" in repr(game)
