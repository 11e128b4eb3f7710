"""Rounds walked in pieces: a checkpoint inside a round (a kill loses at most the interval), a resume
that continues the round bit for bit, and a deadline that keeps a round's complete pieces."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from onnxshap.estimators import estimate
from onnxshap.estimators.checkpoint import load_checkpoint
from onnxshap.games import FewHubsGame
from onnxshap.games.function import FunctionGame
from tests.estimators.test_est_checkpoint import assert_same_result

TMAB = {"top_k": 3, "n_permutations": 60, "permutations_per_round": 30, "rotations": 3, "rotation_groups": 4}


def _hubs() -> FewHubsGame:
    return FewHubsGame.make(n_players=24, n_hubs=3, n_items=120, seed=4)


class Interrupting:
    """A game's value function that raises KeyboardInterrupt (Ctrl-C) at its ``at``-th call."""

    def __init__(self, game: FewHubsGame, at: int) -> None:
        self.game, self.at, self.calls = game, at, 0

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.game(coalitions)


def _function_game(fn, base: FewHubsGame) -> FunctionGame:
    return FunctionGame(fn, base.n_players, batch_size=64, value_range=1.0)


@pytest.mark.parametrize("method", ["tmab", "permutation"])
def test_ctrl_c_inside_a_round_checkpoints_its_pieces_and_resume_continues_it(tmp_path: Path, method: str):
    base = _hubs()
    params = TMAB if method == "tmab" else {"n_permutations": 60, "permutations_per_round": 30}
    reference = estimate(_function_game(base, base), method, progress=False, **params)
    stop = Interrupting(base, at=200 if method == "tmab" else 40)  # in the middle of a round
    with pytest.raises(KeyboardInterrupt):
        estimate(
            _function_game(stop, base), method, checkpoint_dir=tmp_path, checkpoint_every_seconds=1e-6,
            progress=False, **params,
        )  # fmt: skip
    arrays, _, state = load_checkpoint(tmp_path)
    in_round = state["round_stop"] - state["next_perm"]
    assert state["round_stop"] >= 0 and 0 < state["round_done"] < in_round  # a round's complete pieces
    if method == "tmab":  # and the samples it queued for the confidence sequences
        assert 1 <= len(arrays["pending_x"]) <= state["round_done"]
    resumed = estimate(
        _function_game(base, base), method, checkpoint_dir=tmp_path, resume=True, progress=False, **params
    )
    assert_same_result(reference, resumed)  # bit for bit, the same rounds, pieces or not


def test_pieces_do_not_change_the_result() -> None:
    base = _hubs()
    whole = estimate(_function_game(base, base), "tmab", progress=False, **TMAB)
    pieces = estimate(
        _function_game(base, base), "tmab", progress=False, checkpoint_dir=None, max_seconds=3600, **TMAB
    )  # a deadline walks rounds in pieces
    assert_same_result(whole, pieces)


def test_a_deadline_keeps_the_complete_pieces_of_a_round_it_cuts() -> None:
    """The machine slows down tenfold after the round was planned: the deadline cuts the round, and
    its complete pieces stand as a shorter round instead of being thrown away."""
    base = _hubs()
    calls = 0

    def slowing(coalitions: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        time.sleep(0.002 if calls < 40 else 0.03)
        return base(coalitions)

    game = FunctionGame(slowing, base.n_players, batch_size=4, value_range=1.0)
    res = estimate(game, "permutation", max_seconds=4.0, permutations_per_round=64, progress=False)
    assert res.metadata["stop_reason"] == "max_seconds"
    assert res.metadata["permutations"] > 0 and res.metadata["discarded_evaluations"] > 0
    assert res.metadata["wall_seconds"] < 4.0 + 1.0
    assert np.all(res.samples == res.metadata["permutations"])  # every kept walk is a complete walk
