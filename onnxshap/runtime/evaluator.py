"""Evaluate coalitions of units: masks built from a boolean matrix, one session run per coalition or stack."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from onnxshap.errors import DataError
from onnxshap.graph.units import UnitTable
from onnxshap.runtime.batching import fixed_batch_mismatch, plan_chunks
from onnxshap.runtime.session import SessionInfo, input_metas

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape) + "]"


def ort_failure(exc: Exception) -> DataError:
    """The one-line DataError for a failed ONNX Runtime run."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"ONNX Runtime failed on these inputs: {text}")


def non_finite_output(output: str, kept: int | None, n_units: int) -> DataError:
    """The one-line DataError for NaN/inf model outputs under a coalition of `kept` units."""
    return DataError(
        f"the model output {output!r} has NaN/inf values with {kept} of {n_units} units kept; "
        "check the inputs' scale and the model"
    )


def run_session(session, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """session.run with ORT's failures (bad sizes for this model, ...) as one-line DataErrors."""
    try:
        return session.run(names, feeds)
    except Exception as exc:
        if type(exc).__module__.startswith("onnxruntime"):
            raise ort_failure(exc) from None
        raise


def run_items(
    session, names: list[str], feeds: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None = None
) -> list[np.ndarray]:
    """run_session over data items, in runs of the model's fixed batch when it has one (`feeds` checked
    by `prepare_inputs(..., fixed_batch=True)`; `extra` goes whole into every run, e.g. masks)."""
    extra = extra or {}
    plan = plan_chunks(input_metas(session), feeds)
    if plan is None:
        return run_session(session, names, {**feeds, **extra})
    parts = [run_session(session, names, {**chunk, **extra}) for chunk, _ in plan.chunks(feeds)]
    return [plan.merge([p[i] for p in parts], name=name) for i, name in enumerate(names)]


def prepare_inputs(
    session, inputs: np.ndarray | Mapping[str, np.ndarray], skip: set[str], fixed_batch: bool = False
) -> dict:
    """Match user arrays to the model's (non-mask) inputs, checking names, rank, static dims and dtype.

    `fixed_batch`: the caller runs the items in chunks of a fixed batch size (see
    `onnxshap.runtime.batching`), so an input may hold another number of items than its fixed dim 0."""
    metas = input_metas(session, skip=skip)
    if isinstance(inputs, np.ndarray):
        if len(metas) != 1:
            names = ", ".join(m.name for m in metas)
            raise DataError(f"the model has {len(metas)} inputs ({names}); pass a dict of arrays")
        inputs = {metas[0].name: inputs}
    feeds: dict[str, np.ndarray] = {}
    for meta in metas:
        if meta.name not in inputs:
            raise DataError(f"missing model input {meta.name!r} (expected {_fmt(meta.shape)})")
        arr = np.asarray(inputs[meta.name])
        want = _ORT_TO_NUMPY.get(meta.type)
        if want is not None and arr.dtype != want:
            if np.issubdtype(arr.dtype, np.floating) != np.issubdtype(want, np.floating):
                raise DataError(f"input {meta.name!r} expects {np.dtype(want).name}, got {arr.dtype.name}")
            arr = arr.astype(want)
        expected = meta.shape
        skip_dim0 = fixed_batch and fixed_batch_mismatch(meta, arr)
        bad = len(expected) != arr.ndim or any(
            isinstance(d, int) and d != a and not (i == 0 and skip_dim0)
            for i, (d, a) in enumerate(zip(expected, arr.shape, strict=False))
        )
        if bad:
            raise DataError(f"input {meta.name!r} expects shape {_fmt(expected)}, got {_fmt(arr.shape)}")
        feeds[meta.name] = arr
    extra = set(inputs) - {m.name for m in metas}
    if extra:
        raise DataError(f"unknown model input(s): {', '.join(sorted(extra))}")
    return feeds


class MaskedEvaluator:
    """Runs an instrumented model for many coalitions of its units."""

    def __init__(self, info: SessionInfo, units: UnitTable):
        self.info = info
        self.units = units
        self.session = info.session
        self._mask_names = {layer.mask_input for layer in units.layers}
        self.output_names = [o.name for o in self.session.get_outputs()]
        # A session for part of the model (a per-layer suffix) reads only some masks.
        inputs = {m.name for m in input_metas(self.session)}
        self.layers = [layer for layer in units.layers if layer.mask_input in inputs]

    @property
    def stack_blocker(self) -> str | None:
        """Why coalitions cannot be stacked along the batch, or None when they can."""
        if not all(layer.batch_aligned for layer in self.layers):
            return "some masked layers sit inside Loop/Scan bodies"
        if self.units.batch_coupling_ops:
            return f"{', '.join(self.units.batch_coupling_ops)} couples the items of a batch"
        for meta in input_metas(self.session):
            if (
                meta.name not in self._mask_names
                and meta.shape
                and isinstance(meta.shape[0], int)
                and meta.shape[0] > 0
            ):
                return f"input {meta.name!r} has a fixed batch size of {meta.shape[0]}"
        return None

    @property
    def can_stack(self) -> bool:
        """Stacking coalitions along the batch is valid for this model."""
        return self.stack_blocker is None

    def default_stack(self) -> int:
        """How many coalitions per run by default: 1 on CPU (stacking is slower there, measured), 8 on CUDA."""
        return 8 if self.info.provider == "cuda" and self.can_stack else 1

    def masks_for(self, coalitions: np.ndarray, repeat: int = 1) -> dict[str, np.ndarray]:
        """Mask arrays (of the masks this session reads) for a stack of coalitions, each repeated `repeat`
        times along the batch."""
        feeds = {}
        for layer in self.layers:
            block = coalitions[:, layer.offset : layer.offset + layer.channels]
            if repeat > 1:
                block = np.repeat(block, repeat, axis=0)
            feeds[layer.mask_input] = block.astype(layer.dtype).reshape(layer.mask_shape(block.shape[0]))
        return feeds

    def check_coalitions(self, coalitions: np.ndarray) -> np.ndarray:
        c = np.asarray(coalitions)
        if c.ndim == 1:
            c = c[None, :]
        if c.ndim != 2 or c.shape[1] != self.units.n_units:
            raise DataError(f"coalitions must be [n_coalitions, {self.units.n_units}], got {list(c.shape)}")
        return c.astype(bool, copy=False)

    def evaluate(
        self,
        coalitions: np.ndarray,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        outputs: list[str] | None = None,
        stack: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs for each coalition, stacked on a new leading axis: {name: [n_coalitions, *output_shape]}."""
        c = self.check_coalitions(coalitions)
        feeds = prepare_inputs(self.session, inputs, self._mask_names, fixed_batch=True)
        names = outputs or self.output_names
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise DataError(
                f"unknown output(s) {', '.join(unknown)}; the model has {', '.join(self.output_names)}"
            )
        stack = self.default_stack() if stack is None else max(1, int(stack))
        if stack > 1 and not self.can_stack:
            raise DataError(f"stacking coalitions is not possible: {self.stack_blocker}")
        batch = next(iter(feeds.values())).shape[0] if feeds else 1
        results: dict[str, list[np.ndarray]] = {n: [] for n in names}
        tiled: dict[int, dict[str, np.ndarray]] = {}
        for start in range(0, len(c), stack):
            block = c[start : start + stack]
            k = len(block)
            if k == 1:  # in runs of the model's fixed batch when it has one (then stacking is refused)
                out = run_items(self.session, names, feeds, self.masks_for(block))
            else:
                if k not in tiled:
                    tiled[k] = {n: np.concatenate([a] * k, axis=0) for n, a in feeds.items()}
                out = run_session(self.session, names, {**tiled[k], **self.masks_for(block, repeat=batch)})
            for name, arr in zip(names, out, strict=True):
                if k == 1:
                    results[name].append(arr)
                else:
                    results[name].extend(np.split(arr, k, axis=0))
        stacked = {}
        for name, parts in results.items():
            shapes = {p.shape for p in parts}
            if len(shapes) > 1:
                raise DataError(
                    f"output {name!r} changes shape between coalitions; read a fixed-shape output"
                )
            stacked[name] = np.stack(parts)
        return stacked
