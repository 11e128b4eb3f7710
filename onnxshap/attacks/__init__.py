"""Built-in black-box adversarial attacks (they only query the model) and a cache for their examples."""

from __future__ import annotations

from onnxshap.attacks.cache import (
    REQUIRED_KEY_PARTS,
    cache_key,
    cache_path,
    data_fingerprint,
    file_sha256,
    load_or_generate,
)
from onnxshap.attacks.square import (
    DEFAULT_EPS,
    DEFAULT_MAX_QUERIES,
    DEFAULT_P_INIT,
    AttackResult,
    noise_attack,
    p_schedule,
    session_predict,
    square_attack,
)

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_MAX_QUERIES",
    "DEFAULT_P_INIT",
    "REQUIRED_KEY_PARTS",
    "AttackResult",
    "cache_key",
    "cache_path",
    "data_fingerprint",
    "file_sha256",
    "load_or_generate",
    "noise_attack",
    "p_schedule",
    "session_predict",
    "square_attack",
]
