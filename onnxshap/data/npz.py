"""Already-preprocessed arrays in an .npz: `x` (or one array per model input name), optional `y` and `group`."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from onnxshap.data.dataset import Dataset, validate_groups, validate_labels
from onnxshap.errors import DataError

GROUP_KEYS = ("group", "groups")


def _found(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in list(keys)[:12])
    return shown + (", ..." if len(keys) > 12 else "") if keys else "no arrays"


def _open(path: Path) -> np.lib.npyio.NpzFile:
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(
            f"{path.name} is a single .npy array, not an .npz archive (write it with np.savez(path, x=..., y=...))"
        )
    if not magic.startswith(b"PK"):
        raise DataError(f"{path.name} is not an .npz archive (a zip of arrays as written by np.savez)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path.name} as .npz: {text}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - guarded by the magic check
        raise DataError(f"{path.name} is not an .npz archive")
    return npz


def _get(npz: np.lib.npyio.NpzFile, key: str, name: str) -> np.ndarray:
    try:
        return npz[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{name}: cannot read array {key!r}: {text}") from None


def load_npz(path: str | Path, input_names: Sequence[str] | None = None) -> Dataset:
    """Dataset from an .npz.

    With `input_names` (the model's inputs): arrays of those names if all are present, else `x` for a
    single-input model. Without: `x`, under the name "x". `y` (int class ids) and `group` are optional.
    """
    path = Path(path)
    name = path.name
    with _open(path) as npz:
        keys = list(npz.files)
        names = list(input_names) if input_names is not None else None
        if names and all(k in keys for k in names):
            inputs = {k: _get(npz, k, name) for k in names}
        elif (names is None or len(names) == 1) and "x" in keys:
            inputs = {(names[0] if names else "x"): _get(npz, "x", name)}
        elif names is None:
            raise DataError(f"{name} has no array 'x' (found: {_found(keys)})")
        elif len(names) == 1:
            raise DataError(f"{name} has no array 'x' or {names[0]!r} (found: {_found(keys)})")
        else:
            missing = ", ".join(repr(k) for k in names if k not in keys)
            raise DataError(
                f"{name} needs one array per model input ({', '.join(names)}); missing {missing} "
                f"(found: {_found(keys)})"
            )
        y = _get(npz, "y", name) if "y" in keys else None
        group_key = next((k for k in GROUP_KEYS if k in keys), None)
        groups = _get(npz, group_key, name) if group_key else None

    n = None
    for key, arr in inputs.items():
        if arr.ndim == 0:
            raise DataError(f"{name}: array {key!r} is a scalar; expected one row per item")
        if arr.dtype.kind not in "biufc":
            raise DataError(f"{name}: array {key!r} holds {arr.dtype.name} values, not numbers")
        if n is None:
            n, first = len(arr), key
        elif len(arr) != n:
            raise DataError(f"{name}: array {first!r} has {n} items but {key!r} has {len(arr)}")
    assert n is not None
    if n == 0:
        raise DataError(f"{name} holds no items (array {first!r} has 0 rows)")
    if y is not None:
        y = np.asarray(y)
        if y.ndim >= 1 and len(y) != n:
            raise DataError(f"{name}: y has {len(y)} items but {first!r} has {n}")
        y = validate_labels(y, n, what="y", where=name)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim >= 1 and len(groups) != n:
            raise DataError(f"{name}: {group_key} has {len(groups)} items but {first!r} has {n}")
        groups = validate_groups(groups, n, what=str(group_key), where=name)
    return Dataset(inputs=inputs, labels=y, groups=groups, source=str(path))
