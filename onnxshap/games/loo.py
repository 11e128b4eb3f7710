"""Leave-one-out values, computed once per game and shared by everything that needs them.

An audit needs leave-one-out in several places: as the result of ``--estimator loo``, as the baseline
ranking of the removal curves, and as the exact first stratum of estimators that sample by removal
position. ``loo_values(game)`` is that one place: it computes what is missing with
``game.leave_one_out`` and keeps the values on the game object; ``remember_loo`` hands it values
computed elsewhere (a leave-one-out estimator's result).
"""

from __future__ import annotations

import numpy as np

from onnxshap.games.base import Game

_ATTR = "_onnxshap_loo_values"


def _stored(game: Game) -> np.ndarray:
    values = game.__dict__.get(_ATTR)
    if values is None:
        values = np.full((game.n_players, *game.value_shape), np.nan)
        setattr(game, _ATTR, values)
    return values


def remember_loo(game: Game, values: np.ndarray) -> None:
    """Keep leave-one-out values of `game` computed elsewhere ([n_players, *value_shape]; NaN = not known)."""
    values = np.asarray(values, dtype=np.float64)
    want = (game.n_players, *game.value_shape)
    if values.shape != want:
        raise ValueError(f"leave-one-out values of shape {values.shape}, expected {want}")
    stored = _stored(game)
    known = ~np.isnan(values.reshape(game.n_players, -1)).any(axis=1)
    stored[known] = values[known]


def loo_values(game: Game, players: np.ndarray | None = None) -> np.ndarray:
    """v(all) - v(all without i) for each player in `players` (default: all), each computed once per game
    object: [len(players), *value_shape]."""
    stored = _stored(game)
    idx = np.arange(game.n_players) if players is None else np.asarray(players, dtype=np.intp)
    missing = idx[np.isnan(stored[idx].reshape(len(idx), -1)).any(axis=1)]
    missing = np.unique(missing)
    if len(missing):
        stored[missing] = game.leave_one_out(missing)
    return stored[idx].copy()


def loo_missing(game: Game) -> int:
    """How many players' leave-one-out values ``loo_values(game)`` would still have to compute."""
    stored = game.__dict__.get(_ATTR)
    if stored is None:
        return game.n_players
    return int(np.isnan(stored.reshape(game.n_players, -1)).any(axis=1).sum())
