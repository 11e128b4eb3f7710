"""A metric from the user's own code: `module:function` or `path/to/file.py:function`.

The function is called as `fn(outputs, labels, groups)` with `outputs` [m, N, ...] (m coalitions, N items),
`labels` [N] or None, `groups` [N] or None, and returns [m] (or [m, *shape] for a vector game). Optional
attributes on the function: `value_range` (float), `chance` (float).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from onnxshap.errors import DataError
from onnxshap.metrics.base import Metric


def load_callable(spec: str) -> Callable:
    """Import `module:function` or `file.py:function`."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise DataError(f"custom metric must be given as module:function or file.py:function, got {spec!r}")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise DataError(f"custom metric file not found: {path}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot import custom metric {target!r}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise DataError(f"{target!r} has no function {attr!r}")
    return fn


class CustomMetric(Metric):
    """Wraps a user function (see the module docstring for its signature)."""

    needs_labels = False

    def __init__(self, fn: Callable, name: str = "custom"):
        self.fn = fn
        self.name = name
        self.value_range = getattr(fn, "value_range", None)
        self.chance = getattr(fn, "chance", None)

    def prepare(self, reference, labels, groups) -> None:
        probe = np.asarray(self(reference[None], labels, groups))
        self.value_shape = tuple(probe.shape[1:])

    def __call__(self, outputs, labels, groups):
        try:
            values = np.asarray(self.fn(outputs, labels, groups), dtype=np.float64)
        except Exception as exc:
            raise DataError(f"custom metric {self.name!r} failed: {type(exc).__name__}: {exc}") from None
        if values.ndim == 0 or values.shape[0] != len(outputs):
            raise DataError(
                f"custom metric {self.name!r} must return one value per coalition ([m] or [m, ...]); "
                f"got shape {list(values.shape)} for m={len(outputs)}"
            )
        return values
