"""Exact Shapley values by enumerating all 2^n coalitions (n <= 20)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from onnxshap.estimators.base import Estimator
from onnxshap.estimators.errors import ParameterError
from onnxshap.games.base import Game

MAX_PLAYERS = 20
CHUNK = 4096  # coalitions per step: fixed, so the summation order never depends on the game's batch_size


class ExactEstimator(Estimator):
    """phi_i = sum over coalitions S of c_i(S) (v(S) - v(empty)), with the closed-form Shapley weights
    c_i(S) = (|S|-1)! (n-|S|)! / n! if i in S, else -|S|! (n-|S|-1)! / n!.

    Costs 2^n evaluations (refused above 20 players), processed in chunks of 4096 coalitions so a long
    enumeration checkpoints and resumes. Intervals have zero width; ``samples`` is 2^(n-1), the number
    of marginal contributions behind each value.
    """

    name = "exact"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, game: Game, **kwargs: Any) -> None:
        super().__init__(game, **kwargs)
        if self.n > MAX_PLAYERS:
            raise ParameterError(
                f"exact enumerates all 2^n coalitions and is limited to n <= {MAX_PLAYERS} players; this game "
                f"has {self.n}: use method='permutation', 'truncated' or 'tmab'"
            )
        n = self.n
        # w[s] = s! (n - s - 1)! / n!  for s = 0..n-1
        self.weights = np.array([1.0 / (n * math.comb(n - 1, s)) for s in range(n)])
        self.phi = np.zeros((n, *self.shape), dtype=np.float64)
        self.next_coalition = 0

    @property
    def total(self) -> int:
        """Number of coalitions."""
        return 1 << self.n

    def planned_evaluations(self) -> int | None:
        """2^n plus v(all) and v(empty)."""
        return self.total + 2

    def check_budget(self, max_evals: int | None) -> None:
        """Refuse a ``max_evals`` below the 2^n + 2 evaluations exact needs."""
        if max_evals is not None and max_evals < self.total + 2:
            raise ParameterError(
                f"exact needs {self.total + 2} evaluations for {self.n} players; "
                f"max_evals={max_evals} is too small"
            )

    def stop_reason(self) -> str | None:
        """ "complete" once every coalition is done."""
        return "complete" if self.next_coalition >= self.total else None

    def step(self, remaining_evals: int | None) -> None:
        """Evaluate the next chunk of coalitions and add their weighted values."""
        ids = np.arange(self.next_coalition, min(self.next_coalition + CHUNK, self.total), dtype=np.int64)
        coal = ((ids[:, None] >> np.arange(self.n, dtype=np.int64)[None, :]) & 1).astype(np.bool_)
        vals = self.game(coal) - self.v_empty
        sizes = coal.sum(axis=1)
        w_in = self.weights[np.clip(sizes - 1, 0, self.n - 1)]
        w_out = self.weights[np.clip(sizes, 0, self.n - 1)]
        coef = np.where(coal, w_in[:, None], -w_out[:, None])
        self.phi += (coef.T @ vals.reshape(len(ids), -1)).reshape(self.phi.shape)
        self.evaluations += len(ids)
        self.next_coalition = int(ids[-1]) + 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Partial sums."""
        return {"phi": self.phi}

    def scalars(self) -> dict[str, Any]:
        """Next coalition id."""
        return {**super().scalars(), "next_coalition": self.next_coalition}

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        """Restore partial sums."""
        super().load_state(arrays, scalars)
        if arrays["phi"].shape != self.phi.shape:
            raise ValueError(f"phi has shape {arrays['phi'].shape}, expected {self.phi.shape}")
        self.phi = arrays["phi"].copy()
        self.next_coalition = int(scalars["next_coalition"])

    def estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exact values and zero-width intervals (NaN if the enumeration was cut short by the budget)."""
        values = self.phi.copy() if self.stop_reason() else np.full_like(self.phi, np.nan)
        samples = np.full(self.n, 1 << (self.n - 1), dtype=np.int64)
        return values, values.copy(), values.copy(), samples

    def extra_metadata(self) -> dict[str, Any]:
        """Coalitions enumerated."""
        return {"coalitions_done": self.next_coalition, "coalitions_total": self.total}
