"""``estimate()``: the one entry point to every Shapley estimator."""

from __future__ import annotations

import os
from typing import Any

from onnxshap.estimators.base import Estimator, run
from onnxshap.estimators.errors import ParameterError
from onnxshap.estimators.exact import ExactEstimator
from onnxshap.estimators.executor import RoundExecutor
from onnxshap.estimators.loo import LeaveOneOutEstimator
from onnxshap.estimators.permutation import DEFAULT_PERMUTATIONS, PermutationEstimator, SamplingEstimator
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
    backend: str | RoundExecutor = "local",
    address: str | None = None,
    workers: int | None = None,
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
    ``max_evals`` / ``max_seconds`` bound the run; permutation and truncated sampling without any
    budget walk 100 permutations. With ``checkpoint_dir`` the state is written atomically every
    ``checkpoint_every_evals`` evaluations or ``checkpoint_every_seconds`` seconds and at the end;
    ``resume=True`` continues from it (bit-for-bit the result of an uninterrupted run with the same
    seed and budget); ``fingerprint_extra`` adds the caller's own entries to what must match (e.g. the
    model's and the data's sha256), and an interrupt (Ctrl-C, SIGTERM) checkpoints the last complete step
    before it propagates. ``progress``: tqdm bar on stderr (None: only on a terminal). Deterministic for a
    fixed seed.

    ``backend``: "local" (this process, the default) or "ray" (extra ``ray``: rounds of permutations
    are walked by ``workers`` Ray actors on the cluster at ``address``, see
    :mod:`onnxshap.distributed.ray_executor`; sampling methods only), or an executor object to reuse
    (the caller closes it). The values do not depend on the backend's number of workers; for scalar
    games they equal the local backend's, for vector games up to rounding (chunks are merged).
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
    executor, owned = _executor(backend, address, workers, est)
    try:
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
    finally:
        if owned and executor is not None:
            executor.close()  # type: ignore[attr-defined]
    return result


def _executor(
    backend: str | RoundExecutor, address: str | None, workers: int | None, est: Estimator
) -> tuple[RoundExecutor | None, bool]:
    """(executor, whether estimate() owns it); None for the local backend (nothing imported)."""
    if backend == "local" and address is None and workers is None:
        return None, False
    if isinstance(backend, str):
        from onnxshap.distributed import check_backend, make_executor

        check_backend(backend, address, workers)
        if not isinstance(est, SamplingEstimator):
            raise ParameterError(
                f"backend {backend!r} runs the sampling methods (permutation, truncated, tmab); "
                f"method={est.name!r} runs with backend='local'"
            )
        executor, owned = make_executor(backend, address, workers), True
    else:
        if not hasattr(backend, "run_round"):
            raise ParameterError(f"backend must be 'local', 'ray' or a round executor, got {backend!r}")
        if not isinstance(est, SamplingEstimator):
            raise ParameterError(f"an executor runs the sampling methods, not method={est.name!r}")
        executor, owned = backend, False
    if executor is not None:
        est.executor = executor  # type: ignore[union-attr]
    return executor, owned
