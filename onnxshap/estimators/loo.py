"""Leave-one-out: v(all) - v(all without i), one evaluation per player."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from onnxshap.estimators.base import Estimator
from onnxshap.games.base import Game

CHUNK = 1024


class LeaveOneOutEstimator(Estimator):
    """Leave-one-out values: v(all) - v(all without i), n evaluations in total.

    This is a baseline, not an estimate of the Shapley value: it is computed exactly (from one
    evaluation per player), so it has no sampling interval to report, and it is no interval around
    the Shapley value either. ``ci_low`` / ``ci_high`` are therefore NaN and ``samples`` is 1.
    """

    name = "loo"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, game: Game, **kwargs: Any) -> None:
        super().__init__(game, **kwargs)
        self.values = np.full((self.n, *self.shape), np.nan)
        self.next_player = 0

    def planned_evaluations(self) -> int | None:
        """n plus v(all) and v(empty)."""
        return self.n + 2

    def stop_reason(self) -> str | None:
        """ "complete" once every player is done."""
        return "complete" if self.next_player >= self.n else None

    def step(self, remaining_evals: int | None) -> None:
        """Evaluate the next chunk of leave-one-out coalitions."""
        players = np.arange(self.next_player, min(self.next_player + CHUNK, self.n))
        self.values[players] = self.game.leave_one_out(players)
        self.evaluations += len(players)
        self.next_player = int(players[-1]) + 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Values so far."""
        return {"values": self.values}

    def scalars(self) -> dict[str, Any]:
        """Next player."""
        return {**super().scalars(), "next_player": self.next_player}

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        """Restore values so far."""
        super().load_state(arrays, scalars)
        if arrays["values"].shape != self.values.shape:
            raise ValueError(f"values have shape {arrays['values'].shape}, expected {self.values.shape}")
        self.values = arrays["values"].copy()
        self.next_player = int(scalars["next_player"])

    def estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """LOO values, NaN intervals, one sample each (players not reached: NaN, 0 samples)."""
        done = ~np.isnan(self.values.reshape(self.n, -1)).any(axis=1)
        nan = np.full_like(self.values, np.nan)
        return self.values.copy(), nan, nan.copy(), done.astype(np.int64)
