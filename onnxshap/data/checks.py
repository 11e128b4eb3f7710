"""Does a dataset fit the model's inputs? Names, rank, static dims and value kind, with expected-vs-got messages."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np

from onnxshap.data.dataset import Dataset
from onnxshap.data.preprocess import ONNX_TO_DTYPE
from onnxshap.errors import DataError

InputMeta = tuple[str, Sequence[int | str | None], str]


def as_meta(meta: Any) -> InputMeta:
    """(name, shape, type) from a tuple or an onnxruntime NodeArg."""
    if isinstance(meta, tuple):
        name, shape, onnx_type = meta
    else:
        name, shape, onnx_type = meta.name, meta.shape, meta.type
    return str(name), list(shape), str(onnx_type)


def _dim(d: int | str | None) -> str:
    return str(d) if isinstance(d, int) and d > 0 else (d if isinstance(d, str) and d else "?")


def format_expected(shape: Sequence[int | str | None]) -> str:
    """Model shape with a dynamic batch axis shown as N: [N, 1, 8, 8]."""
    dims = [_dim(d) for d in shape]
    if dims and not (isinstance(shape[0], int) and shape[0] > 0):
        dims[0] = "N"
    return "[" + ", ".join(dims) + "]"


def format_got(shape: Sequence[int]) -> str:
    """Data shape with the item axis shown as N."""
    return "[" + ", ".join(["N", *(str(d) for d in shape[1:])]) + "]"


def _fits(expected: Sequence[int | str | None], got: Sequence[int]) -> bool:
    """Rank equal and every static non-batch dim equal."""
    if len(expected) != len(got):
        return False
    return all(
        not (isinstance(e, int) and e > 0) or e == g for e, g in zip(expected[1:], got[1:], strict=True)
    )


def _hint(expected: Sequence[int | str | None], got: Sequence[int], images: bool) -> str:
    if len(expected) == 4 and len(got) == 4:
        for want, perm in (("NCHW", (0, 3, 1, 2)), ("NHWC", (0, 2, 3, 1))):
            if _fits(expected, [got[p] for p in perm]):
                fix = f"try --layout {want}" if images else f"the model wants {want}: x.transpose{perm}"
                return f" (wrong layout? {fix})"
    if len(expected) == len(got) + 1 and not images:
        for axis, fix in ((1, "x[:, None]"), (len(got), "x[..., None]")):
            if _fits(expected, [*got[:axis], 1, *got[axis:]]):
                return f" (missing channel axis? add it with {fix})"
    if images and len(expected) == len(got) + 1:
        return " (the model wants a channel axis: try --layout NCHW or NHWC)"
    if images and len(expected) == 4 and len(got) == 4:
        return " (check --size, --channels and --layout)"
    return ""


def check_against_model(dataset: Dataset, input_metas: Iterable[Any], skip: Collection[str] = ()) -> None:
    """DataError unless every model input (minus `skip`, e.g. mask inputs) has a fitting array and no array is extra.

    `input_metas` are (name, shape, type) tuples or onnxruntime NodeArgs (``onnxshap.runtime.session.input_metas``). The batch
    axis is not compared (a model with a static batch is run in chunks of that size).
    """
    metas = [m for m in (as_meta(m) for m in input_metas) if m[0] not in skip]
    images = dataset.spec is not None
    model_names = [m[0] for m in metas]
    for name, shape, onnx_type in metas:
        if name not in dataset.inputs:
            have = ", ".join(repr(k) for k in dataset.inputs)
            hint = ""
            if len(metas) == 1 and len(dataset.inputs) == 1:
                hint = f" (name the array {name!r} or 'x' in the .npz)"
            raise DataError(
                f"no data for model input {name!r} (expects {format_expected(shape)}); the data has {have}{hint}"
            )
        arr = dataset.inputs[name]
        if not _fits(shape, arr.shape):
            raise DataError(
                f"input {name!r} expects {format_expected(shape)}, got {format_got(arr.shape)}"
                f"{_hint(shape, arr.shape, images)}"
            )
        want = ONNX_TO_DTYPE.get(onnx_type)
        if want is not None:
            want_float = np.issubdtype(np.dtype(want), np.floating)
            got_float = arr.dtype.kind in "fc"
            if want_float != got_float:
                fix = f" (set dtype {want} in the preprocessing)" if images else ""
                raise DataError(f"input {name!r} expects {want} values, got {arr.dtype.name}{fix}")
    extra = [k for k in dataset.inputs if k not in model_names]
    if extra:
        raise DataError(
            f"the data has array(s) {', '.join(map(repr, extra))} that are not model inputs "
            f"(model inputs: {', '.join(model_names) or 'none'})"
        )
