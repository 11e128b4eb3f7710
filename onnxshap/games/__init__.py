"""Games: batched value functions over boolean coalition matrices, and synthetic games with known values."""

from onnxshap.games.base import Game, GameError
from onnxshap.games.function import FunctionGame
from onnxshap.games.shapiq_adapter import ShapiqGame, from_shapiq, to_shapiq
from onnxshap.games.synthetic import AdditiveGame, FewHubsGame, InteractionGame, WeightedVotingGame

__all__ = [
    "AdditiveGame",
    "FewHubsGame",
    "FunctionGame",
    "Game",
    "GameError",
    "InteractionGame",
    "ShapiqGame",
    "WeightedVotingGame",
    "from_shapiq",
    "to_shapiq",
]
