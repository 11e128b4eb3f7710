"""Wrap any Python callable as a game."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxshap.games.base import Game, GameError


class FunctionGame(Game):
    """A game whose values come from ``fn(coalitions)``.

    ``fn`` takes a boolean matrix ``[m, n_players]`` and returns ``[m]`` (scalar game) or ``[m, *shape]``
    (vector game). When ``value_shape`` is None it is inferred from one call on the grand coalition,
    which also caches ``v_all``. ``fn`` is called with at most ``batch_size`` coalitions at a time.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        n_players: int,
        value_shape: tuple[int, ...] | None = None,
        batch_size: int = 256,
        value_range: float | None = None,
    ) -> None:
        if not callable(fn):
            raise GameError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        super().__init__(
            n_players,
            value_shape=() if value_shape is None else tuple(value_shape),
            batch_size=batch_size,
            value_range=value_range,
        )
        if value_shape is None:
            full = np.ones((1, self.n_players), dtype=np.bool_)
            out = np.asarray(fn(full), dtype=np.float64)
            if out.ndim == 0 or out.shape[0] != 1:
                raise GameError(
                    f"fn must return one value per coalition ([m] or [m, *shape]); for 1 coalition it "
                    f"returned shape {out.shape}"
                )
            if not np.isfinite(out).all():
                raise GameError("fn returned a non-finite value for the grand coalition")
            self.value_shape = tuple(out.shape[1:])
            self.evaluations = 1
            self.__dict__["v_all"] = self._as_value(out[0])

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(coalitions), dtype=np.float64)
