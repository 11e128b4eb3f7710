"""Shapley estimators over games: exact, permutation, truncated, tmab (Neuron Shapley), leave-one-out.

Estimators only see :class:`onnxshap.games.Game` objects and a budget; they know nothing about ONNX.
"""

from onnxshap.estimators.api import ESTIMATORS, estimate, method_class, parameters
from onnxshap.estimators.base import Estimator, run
from onnxshap.estimators.errors import CheckpointError, ParameterError
from onnxshap.estimators.exact import ExactEstimator
from onnxshap.estimators.loo import LeaveOneOutEstimator
from onnxshap.estimators.permutation import PermutationEstimator
from onnxshap.estimators.tmab import TMABEstimator
from onnxshap.estimators.truncated import TruncatedEstimator
from onnxshap.estimators.walk import RoundOutput, permutation_rng, walk_round
from onnxshap.results import ShapleyResult

__all__ = [
    "ESTIMATORS",
    "CheckpointError",
    "Estimator",
    "ExactEstimator",
    "LeaveOneOutEstimator",
    "ParameterError",
    "PermutationEstimator",
    "RoundOutput",
    "ShapleyResult",
    "TMABEstimator",
    "TruncatedEstimator",
    "estimate",
    "method_class",
    "parameters",
    "permutation_rng",
    "run",
    "walk_round",
]
