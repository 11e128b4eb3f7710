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


# CUDA EP settings that matter for thousands of runs on the same shapes: search the fastest cuDNN conv
# algorithm once (EXHAUSTIVE pays back after the first run), let it use the workspace that algorithm
# wants, copy on the compute stream. CUDA graphs replay a captured run with no launch overhead but need
# every node on the GPU and fixed input addresses (onnxshap's bound batches give those): opt-in.
CUDA_DEFAULTS: dict[str, str] = {
    "cudnn_conv_algo_search": "EXHAUSTIVE",
    "cudnn_conv_use_max_workspace": "1",
    "do_copy_in_default_stream": "1",
    "enable_cuda_graph": "0",
}
# Options of ONNX Runtime's CUDA execution provider (onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider).
CUDA_OPTIONS = frozenset(
    {
        "device_id",
        "gpu_mem_limit",
        "arena_extend_strategy",
        "cudnn_conv_algo_search",
        "cudnn_conv_use_max_workspace",
        "cudnn_conv1d_pad_to_nc1d",
        "do_copy_in_default_stream",
        "enable_cuda_graph",
        "enable_skip_layer_norm_strict_mode",
        "use_tf32",
        "prefer_nhwc",
        "use_ep_level_unified_stream",
        "tunable_op_enable",
        "tunable_op_tuning_enable",
        "tunable_op_max_tuning_duration_ms",
    }
)


def parse_provider_options(pairs: list[str] | tuple[str, ...] | dict[str, str] | None) -> dict[str, str]:
    """CUDA EP options from KEY=VALUE strings (or a dict), checked against the options ORT knows."""
    if not pairs:
        return {}
    items: list[tuple[str, str]] = []
    if isinstance(pairs, dict):
        items = [(str(k), str(v)) for k, v in pairs.items()]
    else:
        for pair in pairs:
            key, sep, value = str(pair).partition("=")
            if not sep or not key.strip():
                raise RuntimeSetupError(f"provider option {pair!r} is not KEY=VALUE")
            items.append((key.strip(), value.strip()))
    unknown = sorted({k for k, _ in items} - CUDA_OPTIONS)
    if unknown:
        raise RuntimeSetupError(
            f"unknown CUDA provider option {unknown[0]!r}; known: {', '.join(sorted(CUDA_OPTIONS))}"
        )
    return dict(items)


def without_cuda_graph(options: dict[str, str] | None) -> dict[str, str]:
    """`options` for a session fed with fresh arrays each run (a captured graph would read stale ones)."""
    return {k: v for k, v in (options or {}).items() if k != "enable_cuda_graph"}


@dataclass(frozen=True)
class ProviderChoice:
    """What was asked for, the ORT provider list to request and the CUDA options to pass."""

    requested: str
    providers: tuple[str, ...]
    cuda_options: tuple[tuple[str, str], ...] = ()

    def ort_providers(self) -> list:
        """The `providers=` argument for InferenceSession (CUDA with its options)."""
        return [
            (name, dict(self.cuda_options)) if name == _ORT_NAMES["cuda"] else name for name in self.providers
        ]

    @property
    def cuda_graph(self) -> bool:
        """Whether CUDA graph capture was asked for."""
        return self.providers[0] == _ORT_NAMES["cuda"] and dict(self.cuda_options).get(
            "enable_cuda_graph"
        ) in (
            "1",
            "true",
            "True",
        )


def resolve_provider(requested: str, options: dict[str, str] | None = None) -> ProviderChoice:
    """Turn auto|cpu|cuda into an ORT provider list, refusing a forced provider that is not installed.

    `options` override :data:`CUDA_DEFAULTS` (ignored when CUDA is not used).
    """
    choice = _resolve(requested)
    if choice.providers[0] != _ORT_NAMES["cuda"]:
        return choice
    merged = {**CUDA_DEFAULTS, **parse_provider_options(options)}
    return ProviderChoice(choice.requested, choice.providers, tuple(sorted(merged.items())))


def _resolve(requested: str) -> ProviderChoice:
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
