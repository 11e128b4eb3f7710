"""Removal curves: the metric on held-out data after removing the top 1, 2, 3, 5, 10, ... units of a ranking."""

from __future__ import annotations

import numpy as np

from onnxshap.games.base import Game

BASE_STEPS = (0, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000)


def removal_steps(n_units: int, top_k: int | None = None) -> list[int]:
    """The k grid: 0, 1, 2, 3, 5, 10, 20, 30, ... up to max(top_k, 30) and below n_units."""
    limit = min(n_units - 1, max(top_k or 0, 30))
    return [k for k in BASE_STEPS if k <= limit]


def removal_curve(game: Game, ranking: np.ndarray, steps: list[int]) -> np.ndarray:
    """Metric (scalar summary) after removing ranking[:k] for each k in steps."""
    coalitions = np.ones((len(steps), game.n_players), bool)
    for row, k in zip(coalitions, steps, strict=True):
        row[np.asarray(ranking[:k], dtype=int)] = False
    values = game(coalitions)
    return values if values.ndim == 1 else values.reshape(len(steps), -1).mean(axis=1)


def area(steps: list[int], values: np.ndarray) -> float:
    """Area under the curve over the k range, divided by its width (the curve's mean level)."""
    if len(steps) < 2:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def random_curve(game: Game, steps: list[int], seed: int, draws: int = 5) -> np.ndarray:
    """Mean removal curve over `draws` random rankings."""
    rng = np.random.default_rng([seed, 7919])
    curves = [removal_curve(game, rng.permutation(game.n_players), steps) for _ in range(draws)]
    return np.mean(curves, axis=0)
