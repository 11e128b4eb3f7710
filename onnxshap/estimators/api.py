"""``estimate()``: the one entry point to every Shapley estimator."""

from __future__ import annotations

import os
from typing import Any

from onnxshap.estimators.base import Estimator, run
from onnxshap.estimators.errors import ParameterError
from onnxshap.estimators.exact import ExactEstimator
from onnxshap.estimators.executor import RoundExecutor
from onnxshap.estimators.loo import LeaveOneOutEstimator
from onnxshap.estimators.permutation import PermutationEstimator
from onnxshap.estimators.tmab import TMABEstimator
from onnxshap.estimators.truncated import TruncatedEstimator
from onnxshap.games.base import Game
from onnxshap.results import ShapleyResult

ESTIMATORS: dict[str, type[Estimator]] = {
    "tmab": TMABEstimator,
    "exact": ExactEstimator,
    "permutation": PermutationEstimator,
    "truncated": TruncatedEstimator,
    "loo": LeaveOneOutEstimator,
}


def method_class(method: str) -> type[Estimator]:
    """The estimator class named ``method``; ParameterError naming the choices for any other name."""
    if not isinstance(method, str) or method not in ESTIMATORS:
        raise ParameterError(f"unknown method {method!r}; choose one of: {', '.join(ESTIMATORS)}")
    return ESTIMATORS[method]


def parameters(method: str) -> dict[str, Any]:
    """The keyword parameters ``method`` accepts, with their defaults."""
    return dict(method_class(method).defaults)


def estimate(
    game: Game,
    method: str = "tmab",
    *,
    top_k: int | None = None,
    seed: int = 0,
    max_evals: int | None = None,
    max_seconds: float | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every_evals: int | None = 10_000,
    checkpoint_every_seconds: float | None = 60.0,
    resume: bool = False,
    progress: bool | None = None,
    executor: RoundExecutor | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
    **params: Any,
) -> ShapleyResult:
    """Estimate the Shapley value of every player of ``game``.

    ``method``: "tmab" (top-k identification, Neuron Shapley), "exact" (n <= 20), "permutation",
    "truncated" or "loo" (leave-one-out baseline). ``params`` are the method's own keyword parameters
    (see :func:`parameters`): ``delta``, ``epsilon``, ``value_range``, ``union_bound``, ``tolerance``,
    ``patience``, ``images``, ``antithetic``, ``n_permutations``, ``permutations_per_round``,
    ``keep_samples``, ``min_samples``, ``bound``; an unknown name raises ParameterError (a ValueError).
    ``top_k`` asks for the indices of the k largest values (tmab defaults to min(100, n - 1)).
    ``max_evals`` / ``max_seconds`` bound the run; without either, the estimator's own default applies
    (``Estimator.budget_params``: permutation and truncated sampling walk 100 permutations). With
    ``checkpoint_dir`` the state is written atomically every ``checkpoint_every_evals`` evaluations or
    ``checkpoint_every_seconds`` seconds and at the end; ``resume=True`` continues from it (bit-for-bit
    the result of an uninterrupted run with the same seed and budget); ``fingerprint_extra`` adds the
    caller's own entries to what must match (e.g. the model's and the data's sha256), and an interrupt
    (Ctrl-C, SIGTERM) checkpoints the last complete step before it propagates. ``progress``: tqdm bar on
    stderr (None: only on a terminal). Deterministic for a fixed seed.

    ``executor``: who walks the rounds of a sampling method (None: this process; see
    :mod:`onnxshap.estimators.executor`); the caller builds it and closes it. Backends by name
    (``backend="ray"``) are built one layer up, by :func:`onnxshap.estimate` (:mod:`onnxshap.backends`).
    """
    cls = method_class(method)
    params = cls.budget_params(params, max_evals, max_seconds)
    est = cls(game, top_k=top_k, seed=seed, executor=executor, **params)
    est.check_budget(max_evals)
    result = run(
        est,
        max_evals=max_evals,
        max_seconds=max_seconds,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every_evals=checkpoint_every_evals,
        checkpoint_every_seconds=checkpoint_every_seconds,
        resume=resume,
        progress=progress,
        fingerprint_extra=fingerprint_extra,
    )
    if executor is not None:
        result.metadata.update(executor.describe())
    return result
