"""Pick the ONNX Runtime execution provider and thread count; report what actually ran."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache

from onnxshap.errors import RuntimeSetupError

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
_ORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def import_ort():
    """Import onnxruntime or explain which extra installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeSetupError(
            "ONNX Runtime is not installed: pip install 'onnxshap[cpu]' (or 'onnxshap[gpu]' with CUDA)"
        ) from None
    return onnxruntime


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads oversubscribe ORT's intra-op pool)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                    cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(available, len(cores))) if cores else max(1, available)


@dataclass(frozen=True)
class ProviderChoice:
    """What was asked for and the ORT provider list to request."""

    requested: str
    providers: tuple[str, ...]


def resolve_provider(requested: str) -> ProviderChoice:
    """Turn auto|cpu|cuda into an ORT provider list, refusing a forced provider that is not installed."""
    req = requested.lower()
    if req not in PROVIDER_CHOICES:
        raise RuntimeSetupError(f"unknown provider {requested!r}; choose from {', '.join(PROVIDER_CHOICES)}")
    ort = import_ort()
    available = set(ort.get_available_providers())
    if req == "cpu":
        return ProviderChoice(req, ("CPUExecutionProvider",))
    if req == "cuda":
        if _ORT_NAMES["cuda"] not in available:
            raise RuntimeSetupError(
                "provider 'cuda' requested but this onnxruntime has no CUDA support: "
                "pip install 'onnxshap[gpu]' (and uninstall onnxruntime)"
            )
        return ProviderChoice(req, ("CUDAExecutionProvider", "CPUExecutionProvider"))
    if _ORT_NAMES["cuda"] in available:
        return ProviderChoice(req, ("CUDAExecutionProvider", "CPUExecutionProvider"))
    return ProviderChoice(req, ("CPUExecutionProvider",))


def check_active(choice: ProviderChoice, active: list[str]) -> str:
    """Return 'cuda' or 'cpu' for what runs; fail a forced CUDA that fell back, warn when auto did."""
    running = "cuda" if active and active[0] == _ORT_NAMES["cuda"] else "cpu"
    wanted_cuda = choice.providers[0] == _ORT_NAMES["cuda"]
    if wanted_cuda and running != "cuda":
        msg = (
            "CUDA execution provider could not start (missing CUDA/cuDNN libraries or no device); "
            "ONNX Runtime fell back to CPU"
        )
        if choice.requested == "cuda":
            raise RuntimeSetupError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return running
