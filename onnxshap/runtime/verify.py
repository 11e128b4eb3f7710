"""Check an instrumented model against its original: all-ones masks reproduce it, zero masks change it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from onnxshap.runtime.evaluator import _ORT_TO_NUMPY


@dataclass
class InvariantReport:
    """Result of `check_invariant`."""

    max_abs_diff: float  # all masks at 1 vs original, over every output
    output_scale: float  # max |original output|, for a relative figure
    changed_when_removed: bool  # all masks at 0 changes at least one output
    outputs: list[str]

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / max(self.output_scale, 1e-12)

    def passes(self, tolerance: float = 1e-5) -> bool:
        return self.relative_diff <= tolerance and self.changed_when_removed


def random_inputs(
    session,
    batch: int = 1,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
    skip: set[str] | None = None,
) -> dict[str, np.ndarray]:
    """Random feeds for a session's inputs; symbolic dims take `dims[name]`, else `batch` for axis 0, else 16."""
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    feeds = {}
    for meta in session.get_inputs():
        if skip and meta.name in skip:
            continue
        shape = []
        for axis, d in enumerate(meta.shape):
            if isinstance(d, int) and d >= 0:
                shape.append(d)
            elif isinstance(d, str) and d in dims:
                shape.append(dims[d])
            else:
                shape.append(batch if axis == 0 else 16)
        dtype = _ORT_TO_NUMPY.get(meta.type, np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[meta.name] = rng.random(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[meta.name] = np.zeros(shape, dtype=bool)
        else:
            feeds[meta.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    if not np.issubdtype(a.dtype, np.number):
        return float(np.any(a != b))
    both_nan = np.isnan(a) & np.isnan(b) if np.issubdtype(a.dtype, np.floating) else False
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff = np.where(both_nan, 0.0, diff)
    return float(np.nanmax(diff)) if diff.size else 0.0


def check_invariant(inst, inputs: Mapping[str, np.ndarray] | np.ndarray) -> InvariantReport:
    """Compare the instrumented model (masks at 1, then at 0) with the original on the same inputs."""
    reference = inst.run_original(inputs)
    names = list(reference)
    n = inst.n_units
    both = inst.evaluate(np.stack([np.ones(n, bool), np.zeros(n, bool)]), inputs, outputs=names, stack=1)
    max_diff, scale, changed = 0.0, 0.0, False
    for name in names:
        ref = reference[name]
        max_diff = max(max_diff, _max_diff(both[name][0], ref))
        if np.issubdtype(ref.dtype, np.number) and ref.size:
            scale = max(scale, float(np.nanmax(np.abs(ref.astype(np.float64)))))
        changed = changed or _max_diff(both[name][1], ref) > 0
    return InvariantReport(max_diff, scale, changed, names)
