"""Backends that run the sampling estimators' rounds elsewhere than in this process.

``backend="local"`` (the default) walks every round in this process and imports nothing from here;
``backend="ray"`` hands fixed chunks of each round to Ray actors (extra ``ray``). Ray is imported only
when that backend is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnxshap.errors import RuntimeSetupError
from onnxshap.estimators.errors import ParameterError

if TYPE_CHECKING:
    from onnxshap.estimators.executor import RoundExecutor

BACKENDS = ("local", "ray")
RAY_MISSING = 'backend "ray" needs Ray, which is not installed: pip install "onnxshap[ray]"'


def check_backend(backend: str, address: str | None = None, workers: int | None = None) -> None:
    """Validate a backend name and its options (no imports): ParameterError with the reason."""
    if backend not in BACKENDS:
        raise ParameterError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ParameterError(f"workers must be an integer >= 1, got {workers!r}")
    if backend == "local" and (address is not None or workers is not None):
        raise ParameterError(
            "address and workers are options of backend 'ray' (the local backend has neither)"
        )


def require_ray() -> None:
    """Import Ray, or raise a one-line :class:`RuntimeSetupError` saying how to install it."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise RuntimeSetupError(RAY_MISSING) from None


def make_executor(
    backend: str, address: str | None = None, workers: int | None = None
) -> RoundExecutor | None:
    """The executor for ``backend`` (None for "local": the estimators' own default).

    "ray": a :class:`onnxshap.distributed.ray_executor.RayExecutor` on the cluster at ``address``
    ("auto": the running cluster; "HOST:PORT"; None: the Ray instance this process already joined, else
    a new local one) with ``workers`` actors. Ray missing: a one-line :class:`RuntimeSetupError`.
    """
    check_backend(backend, address, workers)
    if backend == "local":
        return None
    require_ray()
    from onnxshap.distributed.ray_executor import RayExecutor

    return RayExecutor(address=address, workers=workers)


__all__ = ["BACKENDS", "RAY_MISSING", "check_backend", "make_executor", "require_ray"]
