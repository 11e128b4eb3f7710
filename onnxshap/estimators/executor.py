"""Round executors: who walks a sampling estimator's round of permutations.

The sampling estimators (permutation, truncated, tmab) advance in rounds; a round is a range of
permutation indices, and permutation ``j``'s randomness comes from ``(seed, j)`` alone
(:func:`onnxshap.estimators.walk.permutation_rng`). An executor walks the round and folds the
marginals into the estimator's state, in index order. :class:`LocalExecutor` (the default) walks it in
this process; ``onnxshap.distributed.RayExecutor`` splits it into fixed chunks of indices walked by
Ray actors. This module imports nothing beyond numpy and the estimators.
"""

from __future__ import annotations

from typing import Any, Protocol

from onnxshap.estimators.walk import RoundOutput, walk_round
from onnxshap.games.base import Game


class RoundWalker(Protocol):
    """What an executor needs of a sampling estimator (``SamplingEstimator`` is one): its game, the
    options of the next round's walks, and a fold for walked permutations in index order."""

    game: Game

    def walk_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`walk_round` besides game and indices."""
        ...

    def fold(self, out: RoundOutput) -> None:
        """Absorb walked permutations (call in index order)."""
        ...


class RoundExecutor(Protocol):
    """Walks rounds of permutations for a :class:`SamplingEstimator`."""

    name: str

    def run_round(self, est: RoundWalker, indices: range) -> int:
        """Walk permutations ``indices``, fold their marginals into ``est`` in index order (with
        ``est.fold`` or by merging ``est.moments()``) and return the evaluations the round cost."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ran the rounds, for the result's metadata."""
        ...


class LocalExecutor:
    """Walks a whole round in this process with :func:`walk_round` (the default; no extra imports)."""

    name = "local"

    def run_round(self, est: RoundWalker, indices: range) -> int:
        """One :func:`walk_round` call on ``est.game``, folded with ``est.fold``."""
        out = walk_round(est.game, indices, **est.walk_options())
        est.fold(out)
        return out.evaluations

    def describe(self) -> dict[str, Any]:
        """{"backend": "local", "workers": 1}."""
        return {"backend": self.name, "workers": 1}


LOCAL = LocalExecutor()
