"""Check an instrumented model against its original: all-ones masks reproduce it, zero masks change it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from onnxshap.errors import DataError
from onnxshap.runtime.evaluator import _ORT_TO_NUMPY
from onnxshap.runtime.session import input_metas

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel


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
    for meta in input_metas(session):
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
    """Max |a - b|; inf when shapes differ or a value is NaN / inf in one array and not the same in the other."""
    if a.shape != b.shape:
        return float("inf")
    if not np.issubdtype(a.dtype, np.number):
        return float(np.any(a != b))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a64 - b64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0


def _check_finite(outputs: Mapping[str, np.ndarray], source: str) -> None:
    """DataError naming the first output and item holding NaN or inf: nothing to compare against."""
    for name, out in outputs.items():
        if not np.issubdtype(out.dtype, np.floating) or np.isfinite(out).all():
            continue
        flat = out.reshape(len(out), -1) if out.ndim else out.reshape(1, 1)
        item = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
        what = "NaN" if np.isnan(flat[item]).any() else "inf"
        raise DataError(
            f"the original model outputs {what} in {name!r} for item {item} of {source}: verify needs finite "
            "outputs to compare (check the data and its preprocessing)"
        )


def check_invariant(
    inst: MaskedModel, inputs: Mapping[str, np.ndarray] | np.ndarray, source: str = "the inputs"
) -> InvariantReport:
    """Compare the instrumented model (masks at 1, then at 0) with the original on the same inputs.

    A DataError when the original's outputs hold NaN or inf (`source` names the inputs in the message):
    such outputs cannot show whether the masks keep the model. NaN or inf in the instrumented model's
    outputs where the original has a number counts as an infinite difference.
    """
    reference = inst.run_original(inputs)
    _check_finite(reference, source)
    names = list(reference)
    n = inst.n_units
    both = inst.evaluate(np.stack([np.ones(n, bool), np.zeros(n, bool)]), inputs, outputs=names, stack=1)
    max_diff, scale, changed = 0.0, 0.0, False
    for name in names:
        ref = reference[name]
        max_diff = max(max_diff, _max_diff(both[name][0], ref))
        if np.issubdtype(ref.dtype, np.number) and ref.size:
            scale = max(scale, float(np.max(np.abs(ref.astype(np.float64)))))
        changed = changed or _max_diff(both[name][1], ref) > 0
    return InvariantReport(max_diff, scale, changed, names)
