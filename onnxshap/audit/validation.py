"""Up-front checks of an audit's options: one line per bad value, before a model is loaded or a file written."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from onnxshap.errors import OnnxShapError

if TYPE_CHECKING:
    from onnxshap.audit.config import AuditConfig

DEFAULT_TOP_K = 30
ATTACK_METRICS = ("adversarial", "robustness")


class OptionError(OnnxShapError, ValueError):
    """An audit option has the wrong type or lies outside its range."""


def is_int(value: Any) -> bool:
    """An integer (numpy integers too), not a bool."""
    import numpy as np

    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number (int or float, numpy too), not a bool."""
    import numpy as np

    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _require(ok: bool, option: str, want: str, value: Any) -> None:
    if not ok:
        raise OptionError(f"{option} must be {want}, got {value!r}")


def validate_config(cfg: AuditConfig) -> AuditConfig:
    """Check every option of `cfg` that can be checked without the model; fill in the attack's defaults.

    Returns `cfg` with `eps` / `queries` set to the values the built-in attack will use, so run.json records
    what ran. Idempotent.
    """
    _require(
        is_real(cfg.split) and 0 <= cfg.split < 1,
        "--split",
        "a held-out fraction in [0, 1) (0: no hold-out)",
        cfg.split,
    )
    _require(
        cfg.top_k is None or (is_int(cfg.top_k) and cfg.top_k >= 1), "--top-k", "an integer >= 1", cfg.top_k
    )
    _require(is_int(cfg.seed) and cfg.seed >= 0, "--seed", "an integer >= 0", cfg.seed)
    _require(
        cfg.max_evals is None or (is_int(cfg.max_evals) and cfg.max_evals >= 1),
        "--max-evals",
        "an integer >= 1",
        cfg.max_evals,
    )
    _require(
        cfg.max_seconds is None or (is_real(cfg.max_seconds) and cfg.max_seconds > 0),
        "--max-seconds",
        "a number of seconds > 0",
        cfg.max_seconds,
    )
    _require(
        is_real(cfg.checkpoint_seconds) and cfg.checkpoint_seconds > 0,
        "--checkpoint-seconds",
        "a number of seconds > 0",
        cfg.checkpoint_seconds,
    )
    _require(
        cfg.delta is None or (is_real(cfg.delta) and 0 < cfg.delta < 1),
        "--delta",
        "a number in (0, 1) (the intervals hold with probability 1 - delta)",
        cfg.delta,
    )
    _require(
        cfg.images is None or (is_int(cfg.images) and cfg.images >= 1),
        "--images",
        "an integer >= 1",
        cfg.images,
    )
    for option, value in (("--stack", cfg.stack), ("--workers", cfg.workers)):
        _require(value is None or (is_int(value) and value >= 1), option, "an integer >= 1", value)
    _require(
        cfg.eps is None or (is_real(cfg.eps) and cfg.eps > 0),
        "--eps",
        "a number > 0 (the attack's L-inf radius in input units)",
        cfg.eps,
    )
    _require(
        cfg.queries is None or (is_int(cfg.queries) and cfg.queries >= 1),
        "--queries",
        "an integer >= 1",
        cfg.queries,
    )
    attack = cfg.metric in ATTACK_METRICS and cfg.adversarial_data is None
    unused = [o for o, v in (("--eps", cfg.eps), ("--queries", cfg.queries)) if v is not None]
    if unused and not attack:
        why = (
            "--adversarial-data brings its own examples"
            if cfg.adversarial_data is not None
            else f"metric {cfg.metric!r} runs no attack"
        )
        raise OptionError(f"{' and '.join(unused)} set the built-in attack of adversarial/robustness; {why}")
    if attack:
        from onnxshap.attacks import DEFAULT_EPS, DEFAULT_MAX_QUERIES

        cfg.eps = DEFAULT_EPS if cfg.eps is None else float(cfg.eps)
        cfg.queries = DEFAULT_MAX_QUERIES if cfg.queries is None else int(cfg.queries)
    return cfg


def resolve_top_k(top_k: int | None, n_units: int) -> int | None:
    """The k to identify among `n_units` units: the given one (it must leave units to rank it against), or the
    default 30 capped at n_units - 1 (None when there is a single unit)."""
    if top_k is None:
        k = min(DEFAULT_TOP_K, n_units - 1)
        return k if k >= 1 else None
    if top_k >= n_units:
        raise OptionError(
            f"--top-k {top_k} must be below the number of units analysed ({n_units}): the top k is "
            "identified against the units left out of it"
        )
    return top_k
