"""The data a game is valued on: one array per model input, plus optional labels, groups and item names."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from onnxshap.data.strata import strata_of, stratified_pick
from onnxshap.errors import DataError

if TYPE_CHECKING:
    from onnxshap.data.preprocess import PreprocessSpec


def validate_labels(labels: object, n: int, what: str = "labels", where: str = "") -> np.ndarray:
    """Labels as int64: class ids [n] ([n, 1] flattened), or integer label sequences [n, L] (CTC targets,
    -1 padded; their metric checks them) unless every row is one-hot; anything else is a DataError."""
    prefix = f"{where}: " if where else ""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.dtype.kind in "iu" and not _one_hot(y):
        sequences = y.astype(np.int64)
        if len(sequences) != n:
            raise DataError(f"{prefix}{what} has {len(sequences)} items but the inputs have {n}")
        return sequences
    if y.ndim != 1:
        hint = " (one-hot? save y.argmax(1))" if y.ndim == 2 else ""
        raise DataError(f"{prefix}{what} must be 1-D class ids, got shape {list(y.shape)}{hint}")
    if not (np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_):
        hint = ""
        if (
            np.issubdtype(y.dtype, np.floating)
            and y.size
            and np.all(np.isfinite(y))
            and np.all(y == np.round(y))
        ):
            hint = " (the values are whole numbers: save them as y.astype(np.int64))"
        raise DataError(f"{prefix}{what} must hold integer class ids, got {y.dtype.name}{hint}")
    if len(y) != n:
        raise DataError(f"{prefix}{what} has {len(y)} items but the inputs have {n}")
    if np.issubdtype(y.dtype, np.unsignedinteger) and y.size and y.max() > np.iinfo(np.int64).max:
        raise DataError(f"{prefix}{what} has class ids too large for int64")
    return y.astype(np.int64)


def _one_hot(y: np.ndarray) -> bool:
    return bool(y.size) and bool(np.isin(y, (0, 1)).all()) and bool((y.sum(axis=1) == 1).all())


def validate_groups(groups: object, n: int, what: str = "groups", where: str = "") -> np.ndarray:
    """Group ids [n]: integers (as int64) or strings."""
    prefix = f"{where}: " if where else ""
    g = np.asarray(groups)
    if g.ndim == 2 and g.shape[1] == 1:
        g = g[:, 0]
    if g.ndim != 1:
        raise DataError(f"{prefix}{what} must be 1-D group ids, got shape {list(g.shape)}")
    if g.dtype.kind in "US":
        g = g.astype(str)
    elif g.dtype.kind in "iub":
        g = g.astype(np.int64)
    else:
        raise DataError(f"{prefix}{what} must hold integer or string group ids, got {g.dtype.name}")
    if len(g) != n:
        raise DataError(f"{prefix}{what} has {len(g)} items but the inputs have {n}")
    return g


@dataclass
class Dataset:
    """Items for the model: `inputs` maps each model input name to an array whose first axis is the item.

    `labels` are int64 class ids, `groups` int or str group ids (fairness), `names` the image file names,
    `source` a short description (path) for messages and reports, `spec` the preprocessing of an image folder.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    names: list[str] | None = None
    source: str = ""
    spec: PreprocessSpec | None = None

    def __post_init__(self) -> None:
        where = self.source
        prefix = f"{where}: " if where else ""
        if not self.inputs:
            raise DataError(f"{prefix}no input arrays")
        inputs: dict[str, np.ndarray] = {}
        n = first = None
        for name, value in self.inputs.items():
            arr = np.asarray(value)
            if arr.ndim == 0:
                raise DataError(f"{prefix}input {name!r} is a scalar; expected one row per item")
            if arr.dtype.kind not in "biufc":
                raise DataError(f"{prefix}input {name!r} holds {arr.dtype.name} values, not numbers")
            if n is None:
                n, first = len(arr), name
            elif len(arr) != n:
                raise DataError(
                    f"{prefix}inputs differ in length: {first!r} has {n} items, {name!r} has {len(arr)}"
                )
            inputs[name] = arr
        assert n is not None
        self.inputs = inputs
        if self.labels is not None:
            self.labels = validate_labels(self.labels, n, where=where)
        if self.groups is not None:
            self.groups = validate_groups(self.groups, n, where=where)
        if self.names is not None:
            self.names = [str(s) for s in self.names]
            if len(self.names) != n:
                raise DataError(f"{prefix}{len(self.names)} names for {n} items")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def input_names(self) -> list[str]:
        """Model input names, in order."""
        return list(self.inputs)

    @property
    def x(self) -> np.ndarray:
        """The array of a single-input dataset."""
        if len(self.inputs) != 1:
            raise DataError(
                f"the data has {len(self.inputs)} inputs ({', '.join(self.inputs)}); pick one by name"
            )
        return next(iter(self.inputs.values()))

    def item_name(self, index: int) -> str:
        """File name of an item, or `item <index>`."""
        return repr(self.names[index]) if self.names is not None else f"item {index}"

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """Items at `indices` (ints, in the given order, or a boolean mask)."""
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        return Dataset(
            inputs={k: v[idx] for k, v in self.inputs.items()},
            labels=None if self.labels is None else self.labels[idx],
            groups=None if self.groups is None else self.groups[idx],
            names=None if self.names is None else [self.names[i] for i in idx],
            source=self.source,
            spec=self.spec,
        )

    def split(self, holdout: float, seed: int = 0, stratify: bool = True) -> tuple[Dataset, Dataset]:
        """(valuation, holdout): a seeded split, `holdout` the held-out fraction in [0, 1).

        The holdout gets round(holdout * N) items (at least 1 and at most N - 1 when holdout > 0 and N >= 2).
        With `stratify` and labels, every label (and label x group, when there are groups) is split in the same
        proportion (largest-remainder rounding). Both parts keep the original item order. Copies of one item
        (the same name, e.g. a file listed twice in labels.csv) always land in the same part: N then counts
        distinct names.
        """
        if (
            isinstance(holdout, bool)
            or not isinstance(holdout, int | float | np.floating)
            or not math.isfinite(holdout)
            or not 0 <= holdout < 1
        ):
            raise DataError(f"the held-out fraction must be in [0, 1) (e.g. 0.5), got {holdout!r}")
        first, copy_of = self._distinct()
        n = len(first)
        k = 0 if holdout == 0 or n < 2 else min(max(math.floor(holdout * n + 0.5), 1), n - 1)
        rng = np.random.default_rng(seed)
        strata = strata_of(self.labels, self.groups) if stratify and self.labels is not None else None
        if strata is not None:
            held = stratified_pick(strata[first], k, rng)
        else:
            held = rng.choice(n, size=k, replace=False)
        mask = np.zeros(n, dtype=bool)
        mask[held] = True
        mask = mask[copy_of]
        return self.subset(~mask), self.subset(mask)

    def _distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """(first item of each distinct name in item order, distinct index of every item); identity without
        names or repeats."""
        n = len(self)
        if self.names is None or len(set(self.names)) == n:
            return np.arange(n), np.arange(n)
        _, first, inverse = np.unique(np.asarray(self.names), return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return first[order], rank[inverse.reshape(-1)]

    def sample(self, rng: np.random.Generator | int | None, size: int) -> Dataset:
        """`size` random items without replacement (kept in item order); all items if size >= N."""
        if size < 1:
            raise DataError(f"sample size must be at least 1, got {size}")
        n = len(self)
        if size >= n:
            return self
        rng = np.random.default_rng(rng)
        return self.subset(np.sort(rng.choice(n, size=size, replace=False)))

    def fingerprint(self) -> str:
        """sha256 (hex) of input names, dtypes, shapes and values, labels and groups (not names/source)."""
        h = hashlib.sha256()

        def add(tag: str, arr: np.ndarray | None) -> None:
            h.update(f"{tag}\0".encode())
            if arr is None:
                h.update(b"none\0")
                return
            arr = np.ascontiguousarray(arr)
            h.update(f"{arr.dtype.str}{list(arr.shape)}\0".encode())
            h.update(arr.data)

        for name in sorted(self.inputs):
            add(f"input:{name}", self.inputs[name])
        add("labels", self.labels)
        add("groups", self.groups)
        return h.hexdigest()

    def check_labels(self, num_classes: int) -> None:
        """DataError unless there are labels and all are classes 0..num_classes-1 of the model."""
        prefix = f"{self.source}: " if self.source else ""
        if self.labels is None:
            raise DataError(f"{prefix}the data has no labels (y in an .npz, a label column in labels.csv)")
        bad = np.flatnonzero((self.labels < 0) | (self.labels >= num_classes))
        if bad.size:
            i = int(bad[0])
            more = f" ({bad.size} labels out of range)" if bad.size > 1 else ""
            raise DataError(
                f"{prefix}label {int(self.labels[i])} of {self.item_name(i)} is not a class of the model "
                f"(0..{num_classes - 1}){more}"
            )

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={list(v.shape)}:{v.dtype.name}" for k, v in self.inputs.items())
        extras = [w for w, v in (("labels", self.labels), ("groups", self.groups)) if v is not None]
        return f"Dataset({self.source!r}, {len(self)} items, {shapes}{', ' if extras else ''}{', '.join(extras)})"
