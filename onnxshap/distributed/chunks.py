"""What a worker does with a chunk of a round, without Ray: testable and reusable by other backends.

A round (a range of permutation indices) is cut into chunks of a fixed number of permutations,
counted from the round's first index; the cut depends on the round and the chunk size only, never on
how many workers there are. A worker walks its chunk with :func:`walk_round` (each permutation's
randomness comes from the run seed and its index) and returns either the per-permutation marginals
(scalar games, or when samples are kept: a few floats per player) or, for vector games, the chunk's
running moments, which the driver merges chunk by chunk in index order. Either way the driver's state
after a round is the same whatever the number of workers.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from onnxshap.estimators.permutation import SamplingEstimator
from onnxshap.estimators.stats import RunningMoments
from onnxshap.estimators.walk import RoundOutput, walk_round
from onnxshap.games.base import Game

DEFAULT_CHUNK = 4  # permutations per task: small enough to spread a 16-permutation round over 4 workers


def chunk_bounds(indices: range, chunk: int, unit: int = 1) -> list[tuple[int, int]]:
    """[start, stop) of each chunk of ``indices``: ``chunk`` permutations (rounded up to a multiple of
    ``unit``, so antithetic pairs never straddle chunks) counted from ``indices.start``."""
    size = max(unit, math.ceil(chunk / unit) * unit)
    return [(s, min(s + size, indices.stop)) for s in range(indices.start, indices.stop, size)]


@dataclass
class Summary:
    """How a worker summarises a chunk for a vector game: a blank estimator of the driver's class and
    parameters absorbs the chunk; its :meth:`SamplingEstimator.moments` go back to the driver."""

    cls: type[SamplingEstimator]
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, est: SamplingEstimator) -> Summary | None:
        """None when the driver wants per-permutation marginals (scalar games, ``keep_samples``)."""
        if est.shape == () or est.params.get("keep_samples"):
            return None
        return cls(type(est), {"top_k": est.top_k, "seed": est.seed, **est.params})


@dataclass
class ChunkResult:
    """A walked chunk: ``output`` (per-permutation marginals) or ``moments`` (summarised), and costs."""

    start: int
    stop: int
    evaluations: int
    seconds: float  # wall time the worker spent walking the chunk
    output: RoundOutput | None = None
    moments: list[RunningMoments] = field(default_factory=list)
    worker: int = -1  # pid of the worker that walked it


def walk_chunk(
    game: Game, start: int, stop: int, options: dict[str, Any], summary: Summary | None
) -> ChunkResult:
    """Walk permutations [start, stop) of ``game`` with ``options`` (``SamplingEstimator.walk_options``)."""
    t0 = time.perf_counter()
    out = walk_round(game, range(start, stop), **options)
    result = ChunkResult(start, stop, out.evaluations, 0.0, worker=os.getpid())
    if summary is None:
        result.output = out
    else:
        blank = summary.cls(game, **summary.kwargs)
        blank.absorb(out)
        result.moments = blank.moments()
    result.seconds = time.perf_counter() - t0
    return result


def fold_chunk(est: SamplingEstimator, result: ChunkResult) -> None:
    """Fold a chunk into the driver's estimator (call in index order)."""
    if result.output is not None:
        est.fold(result.output)
        return
    mine = est.moments()
    if len(mine) != len(result.moments):
        raise RuntimeError(f"a worker returned {len(result.moments)} moment sets, expected {len(mine)}")
    for ours, theirs in zip(mine, result.moments, strict=True):
        ours.merge(theirs)


def prepare_worker_game(game: Game, provider: str, threads: int | None) -> dict[str, Any]:
    """Point an ONNX-backed game (one with an ``inst``) at ``provider`` with ``threads`` intra-op threads
    and build its session now (errors surface when the worker starts). Returns what runs it."""
    inst = getattr(game, "inst", None)
    info: dict[str, Any] = {"pid": os.getpid(), "provider": None, "threads": threads}
    if inst is not None and hasattr(inst, "reopen_runtime"):
        inst.reopen_runtime(provider, threads)  # never reuse a session built with other options
        info["provider"] = inst.provider  # builds the session
    return info
