"""The Game abstraction: a batched value function over boolean coalition matrices."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property

import numpy as np

from onnxshap.deadline import check as check_deadline
from onnxshap.errors import OnnxShapError


class GameError(OnnxShapError, ValueError):
    """A game was built with bad arguments or returned values of the wrong shape or non-finite values."""


class Game(ABC):
    """A cooperative game over ``n_players`` players.

    Calling the game with a boolean matrix ``[m, n_players]`` (True = player present) returns float64
    values ``[m, *value_shape]``. Subclasses implement :meth:`_evaluate`; the base class validates the
    input, splits it into chunks of ``batch_size`` coalitions (the game decides what suits its backend),
    checks the output and counts every evaluated coalition in ``evaluations``.

    ``value_range`` is the width R of the interval the values live in (1.0 for an accuracy), used by
    estimators for truncation and confidence bounds; None when unknown. ``monotone`` (default False)
    states that adding a player never lowers any value (every marginal is >= 0), so a marginal lies in
    [0, R] rather than [-R, R]; estimators relying on it raise if a negative marginal shows up.
    """

    n_players: int
    value_shape: tuple[int, ...]
    batch_size: int
    value_range: float | None
    evaluations: int
    monotone: bool = False

    def __init__(
        self,
        n_players: int,
        *,
        value_shape: tuple[int, ...] = (),
        batch_size: int = 256,
        value_range: float | None = None,
    ) -> None:
        if isinstance(n_players, bool) or not isinstance(n_players, int | np.integer) or n_players < 1:
            raise GameError(f"n_players must be a positive integer, got {n_players!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise GameError(f"batch_size must be a positive integer, got {batch_size!r}")
        if value_range is not None and not (np.isfinite(value_range) and value_range > 0):
            raise GameError(f"value_range must be a positive finite number or None, got {value_range!r}")
        self.n_players = int(n_players)
        self.value_shape = tuple(int(d) for d in value_shape)
        self.batch_size = int(batch_size)
        self.value_range = None if value_range is None else float(value_range)
        self.evaluations = 0

    @abstractmethod
    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        """Values of a chunk of at most ``batch_size`` coalitions: bool [m, n] -> [m, *value_shape]."""

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        """Evaluate coalitions: bool [m, n_players] -> float64 [m, *value_shape] (1-D input: one coalition)."""
        coal = np.asarray(coalitions)
        single = coal.ndim == 1
        if single:
            coal = coal[None, :]
        if coal.ndim != 2 or coal.shape[1] != self.n_players:
            raise GameError(
                f"coalitions must have shape [m, {self.n_players}] (one column per player), got {coal.shape}"
            )
        if coal.dtype != np.bool_:
            if not (np.issubdtype(coal.dtype, np.integer) and np.isin(coal, (0, 1)).all()):
                raise GameError(f"coalitions must be boolean (or 0/1 integers), got dtype {coal.dtype}")
            coal = coal.astype(np.bool_)
        m = coal.shape[0]
        if 0 < m <= self.batch_size:
            out = self._checked(coal)
        else:
            out = np.empty((m, *self.value_shape), dtype=np.float64)
            for start in range(0, m, self.batch_size):
                chunk = coal[start : start + self.batch_size]
                out[start : start + len(chunk)] = self._checked(chunk)
        if not np.isfinite(out).all():
            bad = int(np.flatnonzero(~np.isfinite(out.reshape(m, -1)).all(axis=1))[0])
            raise GameError(f"{type(self).__name__} returned a non-finite value for coalition {bad}")
        return out[0] if single else out

    def _checked(self, chunk: np.ndarray) -> np.ndarray:
        check_deadline()  # between model calls: a command's deadline (onnxshap.deadline) stops here
        vals = np.array(self._evaluate(chunk), dtype=np.float64)  # a copy: never alias the game's buffers
        want = (len(chunk), *self.value_shape)
        if vals.shape != want:
            raise GameError(
                f"{type(self).__name__} returned values of shape {vals.shape} for {len(chunk)} "
                f"coalitions; expected {want}"
            )
        self.evaluations += len(chunk)
        return vals

    def _as_value(self, arr: np.ndarray) -> float | np.ndarray:
        return float(arr) if self.value_shape == () else arr

    @cached_property
    def v_all(self) -> float | np.ndarray:
        """Value of the grand coalition (all players present), computed once."""
        return self._as_value(self(np.ones((1, self.n_players), dtype=np.bool_))[0])

    @cached_property
    def v_empty(self) -> float | np.ndarray:
        """Value of the empty coalition (every player removed), computed once."""
        return self._as_value(self(np.zeros((1, self.n_players), dtype=np.bool_))[0])

    def leave_one_out(self, players: np.ndarray | None = None) -> np.ndarray:
        """v(all) - v(all without i) for each player i in ``players`` (default: all): [len, *value_shape].

        The default evaluates one coalition per player; games that can do it more cheaply (an ONNX game
        runs each unit's layer onward only) override it. Counted in ``evaluations`` like any call.
        """
        idx = np.arange(self.n_players) if players is None else np.asarray(players, dtype=np.intp)
        coal = np.ones((len(idx), self.n_players), dtype=np.bool_)
        coal[np.arange(len(idx)), idx] = False
        values = self(coal) if len(idx) else np.empty((0, *self.value_shape))
        return np.asarray(self.v_all, dtype=np.float64) - values

    def subgame(self, rng: np.random.Generator, size: int | None) -> Game:
        """The same game valued on a random batch of ``size`` data items drawn with ``rng``.

        Games without data (the default) return ``self``. Estimators call this once per permutation when
        asked for a fresh data batch per permutation (the ``images`` parameter), as Neuron Shapley does.
        """
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_players={self.n_players}, value_shape={self.value_shape}, "
            f"batch_size={self.batch_size}, value_range={self.value_range})"
        )
