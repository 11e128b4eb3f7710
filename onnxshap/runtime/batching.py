"""Models with a fixed batch size: the data items are run in chunks of that size.

An export that declares its input as ``[1, 3, 224, 224]`` (or bakes batch 1 into a Reshape) cannot take
270 items in one run. Such models are evaluated in runs of their fixed batch: the items are cut into
chunks of that size (the last one padded with copies of its last item), each chunk is run on its own
and the outputs are put back together along the batch axis, padding dropped. Every item goes through
the same computation as in one big batch, so per-item outputs are those of a model with a free batch
(up to ONNX Runtime's arithmetic, which does not depend on the batch size for per-item ops).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from onnxshap.errors import DataError


def fixed_batch_mismatch(meta, arr: np.ndarray) -> bool:
    """The input declares a fixed batch (dim 0) and `arr` has another number of items."""
    shape = meta.shape
    return (
        arr.ndim >= 1
        and len(shape) == arr.ndim
        and isinstance(shape[0], int)
        and shape[0] > 0
        and arr.shape[0] != shape[0]
    )


@dataclass(frozen=True)
class ItemChunks:
    """How `n_items` items are cut into runs of `size` items; `split` names the inputs cut along axis 0;
    `pad`: the last chunk is filled up to `size` (a fixed batch) rather than run shorter."""

    size: int
    n_items: int
    split: tuple[str, ...]
    pad: bool = True

    @property
    def padded(self) -> bool:
        """The last chunk is padded with copies of the last item."""
        return self.pad and self.n_items % self.size != 0

    def chunks(self, feeds: Mapping[str, np.ndarray]) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """(feeds of one run, number of real items in it) for each chunk, in order."""
        for start in range(0, self.n_items, self.size):
            valid = min(self.size, self.n_items - start)
            run = dict(feeds)
            for name in self.split:
                part = feeds[name][start : start + valid]
                if self.pad and valid < self.size:
                    pad = np.repeat(part[-1:], self.size - valid, axis=0)
                    part = np.concatenate([part, pad], axis=0)
                run[name] = part
            yield run, valid

    def merge(self, parts: list[np.ndarray], axis: int = 0, name: str = "output") -> np.ndarray:
        """Outputs of the chunks' runs (in order) put back together along `axis`, padding dropped."""
        valid = [min(self.size, self.n_items - s) for s in range(0, self.n_items, self.size)]
        pieces = []
        for part, n in zip(parts, valid, strict=True):
            if part.ndim <= axis or part.shape[axis] != (self.size if self.pad else n):
                raise DataError(
                    f"the model's batch is fixed at {self.size}, but its output {name!r} has shape "
                    f"{list(part.shape)} with no batch axis; give it a free batch dimension"
                )
            pieces.append(np.take(part, np.arange(n), axis=axis))
        return np.concatenate(pieces, axis=axis)


def plan_chunks(metas, feeds: Mapping[str, np.ndarray]) -> ItemChunks | None:
    """How to run `feeds` (checked by `prepare_inputs(..., fixed_batch=True)`) on a session whose inputs
    are `metas`: None when one run takes them all, else the chunking. Inputs declaring a fixed batch that
    their array does not have set the chunk size; the inputs cut are those and the free-batch inputs with
    as many items. An input whose array matches its fixed first dimension (a state, a table) goes whole
    into every run."""
    by_name = {m.name: m for m in metas}
    fixed = {n: a for n, a in feeds.items() if n in by_name and fixed_batch_mismatch(by_name[n], a)}
    if not fixed:
        return None
    sizes = {by_name[n].shape[0] for n in fixed}
    counts = {len(a) for a in fixed.values()}
    if len(sizes) > 1 or len(counts) > 1:
        detail = ", ".join(f"{n}: {len(a)} items for batch {by_name[n].shape[0]}" for n, a in fixed.items())
        raise DataError(f"inputs with fixed batch sizes do not agree ({detail})")
    size, n_items = sizes.pop(), counts.pop()
    free = [
        n
        for n, a in feeds.items()
        if n in by_name
        and n not in fixed
        and a.ndim >= 1
        and len(a) == n_items
        and not isinstance(by_name[n].shape[0] if by_name[n].shape else None, int)
    ]
    return ItemChunks(size=size, n_items=n_items, split=tuple(sorted(fixed)) + tuple(free))


def item_runs(
    metas, feeds: Mapping[str, np.ndarray], size: int
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """(feeds, real items) of runs over at most `size` items each (the model's fixed batch if it has one)."""
    plan = plan_chunks(metas, feeds)
    if plan is None:
        n = next((len(a) for a in feeds.values() if a.ndim), 1)
        split = tuple(k for k, a in feeds.items() if a.ndim and len(a) == n)
        plan = ItemChunks(size=max(1, size), n_items=n, split=split, pad=False)
    yield from plan.chunks(feeds)
