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


REACH_SECONDS = 5.0


def check_reachable(address: str | None) -> None:
    """For a "HOST:PORT" address, fail in one line when nothing answers there (Ray itself would keep
    retrying for minutes); "auto", None and ``ray://`` client addresses are left to Ray."""
    import socket

    if address is None or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ParameterError(f"address must be auto or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RuntimeSetupError(
            f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` "
            "or pass --address auto"
        ) from None


MIN_RAY = (2, 52)  # token authentication (RAY_AUTH_MODE=token) arrived in Ray 2.52


def require_ray() -> None:
    """Import Ray (>= 2.52, which has token authentication), or raise a one-line
    :class:`RuntimeSetupError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeSetupError(RAY_MISSING) from None
    try:
        version = tuple(int(part) for part in ray.__version__.split(".")[:2])
    except ValueError:  # a development build: trust it
        return
    if version < MIN_RAY:
        raise RuntimeSetupError(
            f'backend "ray" needs Ray >= 2.52 (token authentication), found {ray.__version__}: '
            'pip install -U "onnxshap[ray]"'
        )


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
    check_reachable(address)
    from onnxshap.distributed.ray_executor import RayExecutor

    return RayExecutor(address=address, workers=workers)


__all__ = ["BACKENDS", "RAY_MISSING", "check_backend", "check_reachable", "make_executor", "require_ray"]
