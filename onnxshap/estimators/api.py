"""``estimate()``: the one entry point to every Shapley estimator."""

from __future__ import annotations

import os
from typing import Any

from onnxshap.estimators.base import Estimator, run
from onnxshap.estimators.errors import ParameterError
from onnxshap.estimators.exact import ExactEstimator
from onnxshap.estimators.loo import LeaveOneOutEstimator
from onnxshap.estimators.permutation import DEFAULT_PERMUTATIONS, PermutationEstimator
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


def parameters(method: str) -> dict[str, Any]:
    """The keyword parameters ``method`` accepts, with their defaults."""
    if method not in ESTIMATORS:
        raise ParameterError(f"unknown method {method!r}; choose one of: {', '.join(ESTIMATORS)}")
    return dict(ESTIMATORS[method].defaults)


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
    **params: Any,
) -> ShapleyResult:
    """Estimate the Shapley value of every player of ``game``.

    ``method``: "tmab" (top-k identification, Neuron Shapley), "exact" (n <= 20), "permutation",
    "truncated" or "loo" (leave-one-out baseline). ``params`` are the method's own keyword parameters
    (see :func:`parameters`): ``delta``, ``epsilon``, ``value_range``, ``union_bound``, ``tolerance``,
    ``patience``, ``images``, ``antithetic``, ``n_permutations``, ``permutations_per_round``,
    ``keep_samples``, ``min_samples``, ``bound``; an unknown name raises ParameterError (a ValueError).
    ``top_k`` asks for the indices of the k largest values (tmab defaults to min(100, n - 1)).
    ``max_evals`` / ``max_seconds`` bound the run; permutation and truncated sampling without any
    budget walk 100 permutations. With ``checkpoint_dir`` the state is written atomically every
    ``checkpoint_every_evals`` evaluations or ``checkpoint_every_seconds`` seconds and at the end;
    ``resume=True`` continues from it (bit-for-bit the result of an uninterrupted run with the same
    seed and budget). ``progress``: tqdm bar on stderr (None: only on a terminal). Deterministic for a
    fixed seed.
    """
    if not isinstance(method, str) or method not in ESTIMATORS:
        raise ParameterError(f"unknown method {method!r}; choose one of: {', '.join(ESTIMATORS)}")
    cls = ESTIMATORS[method]
    if (
        "n_permutations" in cls.defaults
        and method != "tmab"
        and params.get("n_permutations") is None
        and max_evals is None
        and max_seconds is None
    ):
        params["n_permutations"] = DEFAULT_PERMUTATIONS
    est = cls(game, top_k=top_k, seed=seed, **params)
    if method == "exact" and max_evals is not None and max_evals < est.planned_evaluations():  # type: ignore[operator]
        raise ParameterError(
            f"exact needs {est.planned_evaluations()} evaluations for {game.n_players} players; "
            f"max_evals={max_evals} is too small"
        )
    return run(
        est,
        max_evals=max_evals,
        max_seconds=max_seconds,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every_evals=checkpoint_every_evals,
        checkpoint_every_seconds=checkpoint_every_seconds,
        resume=resume,
        progress=progress,
    )
