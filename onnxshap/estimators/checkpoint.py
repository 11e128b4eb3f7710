"""Atomic checkpoints of an estimator's state, and the checks that make resuming safe.

A checkpoint is one ``checkpoint.npz`` in the run folder: the estimator's arrays (running moments,
counts, active set, ...) plus a JSON document (``__meta__``) with the run's fingerprint (method, seed,
parameters, game size, v(all), v(empty), and the caller's own entries: the audit runner adds the model's and
the data's sha256) and scalar state (next permutation index, evaluations, ...).
No RNG state is stored: every permutation's randomness derives from (seed, permutation index).
It is written to a temporary file in the same folder, fsynced, then moved into place with
``os.replace``, so a crash (even ``kill -9``) leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.estimators.errors import CheckpointError
from onnxshap.fileio import atomic_write_bytes
from onnxshap.results import to_jsonable

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = "onnxshap.checkpoint"
FORMAT_VERSION = 1


def checkpoint_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of a run folder lives."""
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def save_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    arrays: dict[str, np.ndarray],
    fingerprint: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write the checkpoint atomically and return its path."""
    path = checkpoint_path(checkpoint_dir)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": fingerprint, "state": state}
    blob = np.frombuffer(json.dumps(to_jsonable(meta), sort_keys=True).encode(), dtype=np.uint8)
    atomic_write_bytes(path, lambda fh: np.savez(fh, __meta__=blob, **arrays))
    return path


def load_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]] | None:
    """Read (arrays, fingerprint, state), or None when the folder holds no checkpoint."""
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an onnxshap checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {meta.get('format_version')}, this onnxshap reads {FORMAT_VERSION}"
        )
    return arrays, meta["fingerprint"], meta["state"]


def _same(a: Any, b: Any, key: str) -> bool:
    if key in ("v_all", "v_empty"):
        try:
            return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-9))
        except (TypeError, ValueError):
            return False
    return a == b


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse to resume a checkpoint made by a different run, naming every difference."""
    current = to_jsonable(current)
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if key == "params":
            sp, cp = saved.get(key, {}), current.get(key, {})
            for name in sorted(set(sp) | set(cp)):
                if sp.get(name, "<unset>") != cp.get(name, "<unset>"):
                    diffs.append(
                        f"{name}={sp.get(name, '<unset>')!r} there, {cp.get(name, '<unset>')!r} here"
                    )
        elif not _same(saved.get(key), current.get(key), key):
            diffs.append(f"{key}={saved.get(key)!r} there, {current.get(key)!r} here")
    if diffs:
        raise CheckpointError(
            f"cannot resume from {path}: it belongs to a different run ({'; '.join(diffs)}); "
            "use the same game, method, seed and parameters, or another checkpoint folder"
        )
