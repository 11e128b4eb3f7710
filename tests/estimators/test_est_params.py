"""Bad parameters give one clear error naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.errors import OnnxShapError
from onnxshap.estimators import ParameterError, estimate, parameters
from onnxshap.games import AdditiveGame, InteractionGame


@pytest.fixture
def game() -> InteractionGame:
    return InteractionGame.random(6, 4, seed=0)


def test_unknown_parameter_lists_the_valid_ones(game: InteractionGame) -> None:
    with pytest.raises(ParameterError) as err:
        estimate(game, "permutation", patiance=3, progress=False)
    msg = str(err.value)
    assert "patiance" in msg and "method='permutation'" in msg
    for name in ("antithetic", "delta", "images", "n_permutations", "permutations_per_round"):
        assert name in msg
    with pytest.raises(ParameterError, match="valid parameters: none"):
        estimate(game, "exact", delta=0.1, progress=False)
    # a parameter of another method is unknown here
    with pytest.raises(ParameterError, match="epsilon"):
        estimate(game, "truncated", epsilon=0.1, progress=False)


def test_errors_are_value_errors_and_onnxshap_errors(game: InteractionGame) -> None:
    with pytest.raises(ValueError):
        estimate(game, "permutation", delta=2, progress=False)
    with pytest.raises(OnnxShapError):
        estimate(game, "permutation", delta=2, progress=False)


@pytest.mark.parametrize(
    ("method", "kwargs", "pattern"),
    [
        ("nope", {}, "unknown method 'nope'; choose one of: tmab, exact, permutation, truncated, loo"),
        ("permutation", {"delta": 0}, r"delta must be a number in \(0, 1\)"),
        ("permutation", {"delta": True}, "delta must be"),
        ("permutation", {"n_permutations": 0}, "n_permutations must be an integer >= 1"),
        ("permutation", {"n_permutations": 2.5}, "n_permutations must be"),
        ("permutation", {"permutations_per_round": 0}, "permutations_per_round"),
        ("permutation", {"antithetic": "yes"}, "antithetic must be True or False"),
        ("permutation", {"images": -1}, "images must be an integer >= 1 or None"),
        ("truncated", {"patience": 0}, "patience must be an integer >= 1"),
        ("truncated", {"tolerance": -0.1}, "tolerance must be"),
        ("truncated", {"value_range": 0}, "value_range must be a positive number"),
        ("tmab", {"epsilon": -1}, "epsilon must be a number >= 0"),
        ("tmab", {"min_samples": 1}, "min_samples must be an integer >= 2"),
        ("tmab", {"bound": "chernoff"}, "bound must be None or one of 'betting', 'stitched'"),
        ("tmab", {"union_bound": 1}, "union_bound must be True or False"),
        ("tmab", {"guarantee": "joint"}, "guarantee must be None, 'simultaneous', 'per-unit' or 'none'"),
        ("tmab", {"guarantee": "simultaneous", "bound": "student-t"}, "does not give guarantee"),
        ("tmab", {"union_bound": True}, "union_bound applies to guarantee='per-unit'"),
        ("truncated", {"check_every": 0}, "check_every must be an integer >= 1"),
        ("tmab", {"top_k": 6}, r"top_k must be an integer in \[1, 5\] for tmab"),
        ("permutation", {"top_k": 0}, r"top_k must be an integer in \[1, 6\]"),
        ("permutation", {"seed": -1}, "seed must be an integer >= 0"),
        ("permutation", {"max_evals": 0}, "max_evals must be an integer >= 1"),
        ("permutation", {"max_seconds": -2.0}, "max_seconds must be > 0"),
        ("permutation", {"resume": True}, "resume=True needs checkpoint_dir"),
        ("permutation", {"checkpoint_every_evals": 0}, "checkpoint_every_evals"),
        ("exact", {"max_evals": 10}, "exact needs 66 evaluations"),
    ],
)
def test_bad_values(game: InteractionGame, method: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ParameterError, match=pattern):
        estimate(game, method, progress=False, **kwargs)


def test_exact_refuses_more_than_20_players() -> None:
    game = AdditiveGame(np.ones(21))
    with pytest.raises(ParameterError, match=r"limited to n <= 20 players; this game has 21"):
        estimate(game, "exact", progress=False)
    assert estimate(AdditiveGame(np.ones(3)), "exact", progress=False).values.tolist() == [1, 1, 1]


def test_not_a_game_is_explained() -> None:
    with pytest.raises(ParameterError, match="FunctionGame"):
        estimate(lambda c: c.sum(1), "permutation", progress=False)  # type: ignore[arg-type]


def test_parameters_lists_defaults() -> None:
    tmab = parameters("tmab")
    assert tmab["delta"] == 0.05 and tmab["epsilon"] == 0.0 and tmab["tolerance"] == 0.2
    assert tmab["guarantee"] is None and tmab["bound"] is None  # resolved: simultaneous, betting
    assert parameters("exact") == {} and "antithetic" in parameters("permutation")
    with pytest.raises(ParameterError):
        parameters("bogus")
