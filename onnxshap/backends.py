"""``onnxshap.estimate``: the estimators on a backend named by the caller ("local" or "ray").

The estimators take a ready round executor at construction and never import a backend
(:mod:`onnxshap.estimators` knows nothing of :mod:`onnxshap.distributed`); this module, one layer above
both, turns a backend name into an executor, hands it in and closes it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from onnxshap.estimators.api import estimate as estimate_with
from onnxshap.estimators.api import method_class
from onnxshap.estimators.errors import ParameterError
from onnxshap.estimators.executor import RoundExecutor
from onnxshap.games.base import Game
from onnxshap.results import ShapleyResult


def check_backend_for(
    method: str, backend: str, address: str | None = None, workers: int | None = None
) -> None:
    """Refuse a bad backend for ``method`` without starting anything: unknown name, bad options, or a
    non-local backend for an estimator that walks no rounds (see ``Estimator.check_backend``)."""
    from onnxshap.distributed import check_backend

    check_backend(backend, address, workers)
    method_class(method).check_backend(backend)


@contextmanager
def executor_for(
    method: str,
    backend: str | RoundExecutor = "local",
    address: str | None = None,
    workers: int | None = None,
) -> Iterator[RoundExecutor | None]:
    """The round executor for ``backend`` (None: local), closed on exit when built here.

    A backend name is checked and built (Ray imported only for "ray"); an executor object is the
    caller's, used as it is and left open."""
    if not isinstance(backend, str):
        if not hasattr(backend, "run_round"):
            raise ParameterError(f"backend must be 'local', 'ray' or a round executor, got {backend!r}")
        yield backend
        return
    if backend == "local" and address is None and workers is None:
        yield None
        return
    from onnxshap.distributed import make_executor

    check_backend_for(method, backend, address, workers)
    executor = make_executor(backend, address, workers)
    try:
        yield executor
    finally:
        if executor is not None:
            executor.close()  # type: ignore[attr-defined]


def estimate(
    game: Game,
    method: str = "tmab",
    *,
    backend: str | RoundExecutor = "local",
    address: str | None = None,
    workers: int | None = None,
    **kwargs: Any,
) -> ShapleyResult:
    """:func:`onnxshap.estimators.estimate` on a backend: every keyword of it, plus

    ``backend``: "local" (this process, the default) or "ray" (extra ``ray``: rounds of permutations
    are walked by ``workers`` Ray actors on the cluster at ``address``, see
    :mod:`onnxshap.distributed.ray_executor`; sampling methods only), or an executor object to reuse
    (the caller closes it). The values do not depend on the backend's number of workers; for scalar
    games they equal the local backend's, for vector games up to rounding (chunks are merged).
    """
    method_class(method)  # an unknown method is refused before any backend starts
    with executor_for(method, backend, address, workers) as executor:
        return estimate_with(game, method, executor=executor, **kwargs)


__all__ = ["check_backend_for", "estimate", "executor_for"]
