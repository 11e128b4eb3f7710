"""Adapters between onnxshap games and shapiq (optional extra: ``pip install onnxshap[shapiq]``).

``to_shapiq(game)`` hands one of our games to shapiq's approximators (PermutationSamplingSV, KernelSHAP,
SVARM, ...); ``from_shapiq(game)`` runs our estimators on a shapiq game. shapiq is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxshap.games.base import Game, GameError

_MISSING = "shapiq is not installed: install onnxshap[shapiq] (pip install 'onnxshap[shapiq]')"


def _import_shapiq() -> Any:
    try:
        import shapiq
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return shapiq


def to_shapiq(game: Game, reduce: Callable[[np.ndarray], np.ndarray] | None = None) -> Any:
    """Wrap ``game`` as a ``shapiq.Game``.

    shapiq games are scalar and centred (v(empty) = 0): the wrapper subtracts ``game.v_empty``, as
    shapiq's own games do, so Shapley values are unchanged. Vector games need ``reduce``, a function
    mapping values ``[m, *value_shape]`` to ``[m]`` (e.g. ``lambda v: v[:, 3]`` for one element).
    """
    shapiq = _import_shapiq()
    if game.value_shape != () and reduce is None:
        raise GameError(
            f"shapiq games are scalar; this game's values have shape {game.value_shape}: pass reduce=..."
        )

    def values(coalitions: np.ndarray) -> np.ndarray:
        out = game(np.asarray(coalitions, dtype=np.bool_))
        return np.asarray(out if reduce is None else reduce(out), dtype=np.float64)

    empty = float(values(np.zeros((1, game.n_players), dtype=np.bool_))[0])

    class _Wrapped(shapiq.Game):  # type: ignore[misc, name-defined]
        def value_function(self, coalitions: np.ndarray) -> np.ndarray:
            return values(coalitions)

    wrapped = _Wrapped(game.n_players, normalize=True, normalization_value=empty)
    wrapped.onnxshap_game = game
    return wrapped


class ShapiqGame(Game):
    """One of shapiq's games (anything callable on boolean coalition matrices) as an onnxshap game."""

    def __init__(self, game: Any, value_range: float | None = None, batch_size: int = 1024) -> None:
        n = getattr(game, "n_players", None)
        if not isinstance(n, int | np.integer) or n < 1:
            raise GameError("from_shapiq needs a shapiq game with a positive n_players")
        self.shapiq_game = game
        super().__init__(int(n), batch_size=batch_size, value_range=value_range)

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return np.asarray(self.shapiq_game(coalitions), dtype=np.float64).reshape(len(coalitions))


def from_shapiq(game: Any, value_range: float | None = None, batch_size: int = 1024) -> ShapiqGame:
    """Wrap a ``shapiq.Game`` so onnxshap's estimators can run it (values as shapiq returns them)."""
    _import_shapiq()
    return ShapiqGame(game, value_range=value_range, batch_size=batch_size)
