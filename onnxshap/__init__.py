"""onnxshap: Neuron Shapley for any exported ONNX model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from onnxshap.backends import estimate
    from onnxshap.instrumented import Instrumented, instrument, load_instrumented

__all__ = ["Instrumented", "__version__", "estimate", "instrument", "load_instrumented"]

_LAZY = {
    "instrument": "onnxshap.instrumented",
    "Instrumented": "onnxshap.instrumented",
    "load_instrumented": "onnxshap.instrumented",
    "estimate": "onnxshap.backends",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import onnxshap` (and the estimators) never pull in onnx / onnxruntime.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onnxshap' has no attribute {name!r}")
