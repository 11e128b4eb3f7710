"""Save generated adversarial examples and reuse them, so an adversarial game stays fixed between runs.

``<cache_dir>/adv-<sha256 of the key>.npz`` holds the result (arrays plus the key and parameters as JSON
strings, so it is self-contained); ``adv-<sha256>.json`` next to it repeats key and parameters for people.
Both are written to a temporary file in the same folder and renamed into place, so a crash or a
concurrent run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.attacks.square import AttackResult
from onnxshap.fileio import atomic_write_bytes, sha256_of

__all__ = [
    "CACHE_VERSION",
    "REQUIRED_KEY_PARTS",
    "cache_key",
    "cache_path",
    "data_fingerprint",
    "file_sha256",
    "load_or_generate",
    "load_result",
    "save_result",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Part of every key: bump it when the attack's algorithm or the file layout changes."""

REQUIRED_KEY_PARTS = ("model_sha256", "data", "eps", "max_queries", "seed", "p_init", "targeted")
"""What must be in a key for a cached result to be trusted (add more freely: clip, target, layout...)."""

_CHECKED_PARAMS = ("eps", "max_queries", "seed", "p_init", "targeted")


file_sha256 = sha256_of


def data_fingerprint(*arrays: np.ndarray | None) -> str:
    """Hex sha256 over the dtypes, shapes and bytes of arrays (None allowed, e.g. for no target)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype.str}{arr.shape};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _canonical(value: Any) -> Any:
    """JSON-ready form of a key part; arrays become their fingerprint."""
    if isinstance(value, np.ndarray):
        return {"sha256": data_fingerprint(value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cache key part of type {type(value).__name__} is not supported")


def _key_json(key_parts: Mapping[str, Any]) -> str:
    missing = [k for k in REQUIRED_KEY_PARTS if k not in key_parts]
    if missing:
        raise ValueError(
            f"cache key is missing {', '.join(missing)} (required: {', '.join(REQUIRED_KEY_PARTS)})"
        )
    parts = _canonical(dict(key_parts))
    parts["cache_version"] = CACHE_VERSION
    return json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cache_key(key_parts: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of the key parts (plus the cache version)."""
    return hashlib.sha256(_key_json(key_parts).encode()).hexdigest()


def cache_path(cache_dir: str | os.PathLike, key_parts: Mapping[str, Any]) -> Path:
    """Where the result for these key parts lives: ``<cache_dir>/adv-<sha256>.npz``."""
    return Path(cache_dir) / f"adv-{cache_key(key_parts)}.npz"


def save_result(path: str | os.PathLike, result: AttackResult, key_parts: Mapping[str, Any]) -> None:
    """Write ``result`` atomically to ``path`` (.npz) and a .json summary beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = json.loads(_key_json(key_parts))
    meta = {
        "key": key,
        "params": result.params,
        "n": result.n,
        "success_rate": result.success_rate,
        "clean_accuracy": result.clean_accuracy,
        "attack_success_rate": result.attack_success_rate,
    }
    arrays = {
        "x_adv": result.x_adv,
        "success": result.success,
        "queries": result.queries,
        "clean_correct": result.clean_correct,
        "y": result.y,
        "target": result.target if result.target is not None else np.zeros(0, np.int64),
        "has_target": np.array(result.target is not None),
        "key": np.array(_key_json(key_parts)),
        "params": np.array(json.dumps(result.params, sort_keys=True)),
    }
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path.with_suffix(".json"), lambda f: f.write(text.encode()))


def load_result(path: str | os.PathLike) -> tuple[AttackResult, str]:
    """Read a saved result; returns it and the canonical key JSON it was saved under."""
    with np.load(path, allow_pickle=False) as z:
        target = z["target"] if bool(z["has_target"]) else None
        result = AttackResult(
            x_adv=z["x_adv"],
            success=z["success"].astype(bool),
            queries=z["queries"].astype(np.int64),
            clean_correct=z["clean_correct"].astype(bool),
            y=z["y"].astype(np.int64),
            target=target,
            params=json.loads(str(z["params"])),
        )
        return result, str(z["key"])


def load_or_generate(
    cache_dir: str | os.PathLike,
    key_parts: Mapping[str, Any],
    generate: Callable[[], AttackResult],
) -> AttackResult:
    """The cached result for ``key_parts`` if there is one, else ``generate()``, saved for next time.

    ``key_parts`` must name at least :data:`REQUIRED_KEY_PARTS` (model sha256, data fingerprint, eps,
    max_queries, seed, p_init, targeted); arrays in it are fingerprinted. A cached file whose stored key
    differs or that cannot be read is regenerated. A generated result whose own eps/max_queries/seed/
    p_init/targeted disagree with the key is refused (it would poison the cache).
    """
    key_json = _key_json(key_parts)
    path = cache_path(cache_dir, key_parts)
    if path.exists():
        try:
            result, stored = load_result(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("adversarial cache %s unreadable (%s); regenerating", path, exc)
        else:
            if stored == key_json:
                log.info("adversarial examples reused from %s", path)
                return result
            log.warning("adversarial cache %s holds another key; regenerating", path)
    result = generate()
    for name in _CHECKED_PARAMS:
        if name in result.params and _canonical(result.params[name]) != _canonical(key_parts[name]):
            raise ValueError(
                f"generated result has {name}={result.params[name]!r} but the cache key says {key_parts[name]!r}"
            )
    save_result(path, result, key_parts)
    log.info("adversarial examples saved to %s", path)
    return result
