"""The one result type every estimator returns and every report / prune / check command reads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.fileio import atomic_write_bytes

FORMAT = "onnxshap.ShapleyResult"
FORMAT_VERSION = 1


def to_jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays (also nested in dicts, lists, tuples) into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _stem(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".npz", ".json") else p


@dataclass
class ShapleyResult:
    """Per-player Shapley estimates with confidence intervals, sample counts and run metadata.

    ``values``, ``ci_low`` and ``ci_high`` have shape ``[n_players]`` for scalar games and
    ``[n_players, *value_shape]`` for vector games ("Shapley modes"). ``samples[i]`` is the number of
    marginal contributions behind player i's estimate. ``top_k`` holds player indices sorted by value,
    descending (vector games: by the mean over elements), or None when no k was asked for.
    ``marginals`` / ``permutations`` are only filled when the estimator ran with ``keep_samples=True``:
    ``marginals[p, i]`` is player i's marginal in permutation p (NaN where it got none) and
    ``permutations[p]`` the removal order of permutation p. ``decision`` (estimators with a top-k rule:
    tmab) is +1 for a player certainly in the top k, -1 certainly out, 0 undecided, under the guarantee
    ``metadata["guarantee"]`` states; None for the others.
    """

    values: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    samples: np.ndarray
    top_k: np.ndarray | None
    evaluations: int
    metadata: dict[str, Any] = field(default_factory=dict)
    marginals: np.ndarray | None = None
    permutations: np.ndarray | None = None
    decision: np.ndarray | None = None

    @property
    def n_players(self) -> int:
        """Number of players."""
        return int(self.values.shape[0])

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of one player's value: () for scalar games."""
        return tuple(self.values.shape[1:])

    @property
    def scores(self) -> np.ndarray:
        """One scalar per player used for ranking: the value, or its mean over elements for vector games."""
        return scalar_summary(self.values)

    def ranking(self) -> np.ndarray:
        """All player indices sorted by score, descending (ties keep index order)."""
        return np.argsort(-self.scores, kind="stable")

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (metadata), each atomically; returns both paths."""
        stem = _stem(path)
        npz, js = stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")
        arrays: dict[str, np.ndarray] = {
            "values": self.values,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "samples": self.samples,
        }
        if self.top_k is not None:
            arrays["top_k"] = self.top_k
        if self.marginals is not None:
            arrays["marginals"] = self.marginals
        if self.permutations is not None:
            arrays["permutations"] = self.permutations
        if self.decision is not None:
            arrays["decision"] = self.decision
        atomic_write_bytes(npz, lambda fh: np.savez(fh, **arrays))
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "evaluations": int(self.evaluations),
            "metadata": to_jsonable(self.metadata),
        }
        text = json.dumps(doc, indent=2, sort_keys=True).encode()
        atomic_write_bytes(js, lambda fh: fh.write(text))
        return npz, js

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShapleyResult:
        """Read a result written by :meth:`save` (pass the stem, the .npz or the .json path)."""
        stem = _stem(path)
        npz, js = stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")
        for p in (npz, js):
            if not p.is_file():
                raise FileNotFoundError(f"no saved ShapleyResult at {p}")
        doc = json.loads(js.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{js} is not a saved ShapleyResult (format {doc.get('format')!r})")
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(
            values=arrays["values"],
            ci_low=arrays["ci_low"],
            ci_high=arrays["ci_high"],
            samples=arrays["samples"],
            top_k=arrays.get("top_k"),
            evaluations=int(doc["evaluations"]),
            metadata=doc["metadata"],
            marginals=arrays.get("marginals"),
            permutations=arrays.get("permutations"),
            decision=arrays.get("decision"),
        )

    def __repr__(self) -> str:
        md = self.metadata
        return (
            f"ShapleyResult(estimator={md.get('estimator')!r}, n_players={self.n_players}, "
            f"value_shape={self.value_shape}, evaluations={self.evaluations}, "
            f"converged={md.get('converged')}, stop_reason={md.get('stop_reason')!r})"
        )


def scalar_summary(values: np.ndarray) -> np.ndarray:
    """[n] or [n, *shape] -> [n]: identity for scalar values, mean over elements for vectors."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim <= 1:
        return values
    return values.reshape(values.shape[0], -1).mean(axis=1)
