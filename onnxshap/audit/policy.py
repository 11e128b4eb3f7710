"""Deployment gate: policies checked against a finished run folder (`onnxshap check`)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from onnxshap.audit.runfolder import RunFolder
from onnxshap.audit.validation import OptionError, is_int, is_real
from onnxshap.errors import DataError


class PolicyError(OptionError):
    """A policy bound has the wrong type or range, or cannot be checked for this audit."""


@dataclass
class Policy:
    """Bounds a model must meet; None switches a bound off."""

    max_drop: float | None = None  # metric drop on held-out data after removing the top `drop_k` units
    drop_k: int = 10
    max_gap: float | None = None  # fairness gap (metric "fairness") on held-out data
    min_value: float | None = None  # the metric itself on held-out data
    baseline_run: str | None = None  # a previous run folder (e.g. the last model version)
    min_overlap: float | None = None  # |top-k here ∩ top-k there| / k against baseline_run

    def __post_init__(self) -> None:
        """Types and ranges of every bound (a TOML/JSON file can hold anything): one line for the first bad one."""
        numbers = {
            "max_drop": (lambda v: True, "a number"),
            "min_value": (lambda v: True, "a number"),
            "max_gap": (lambda v: 0 <= v <= 1, "a number in [0, 1] (an accuracy gap)"),
            "min_overlap": (lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
        }
        for name, (in_range, want) in numbers.items():
            value = getattr(self, name)
            if value is not None and not (is_real(value) and in_range(value)):
                raise PolicyError(f"policy {name} must be {want}, got {value!r}")
        if not (is_int(self.drop_k) and self.drop_k >= 1):
            raise PolicyError(f"policy drop_k must be an integer >= 1, got {self.drop_k!r}")
        if self.baseline_run is not None and not isinstance(self.baseline_run, str | os.PathLike):
            raise PolicyError(f"policy baseline_run must be a run folder path, got {self.baseline_run!r}")

    def check_for(self, metric: str) -> None:
        """Refuse, before any audit, bounds that cannot be checked for `metric` or lack what they compare with."""
        if self.max_gap is not None and metric != "fairness":
            raise PolicyError(f"the max_gap policy needs --metric fairness (the gap), not {metric!r}")
        if self.min_overlap is not None:
            if not self.baseline_run:
                raise PolicyError("the min_overlap policy needs a baseline run folder (--baseline-run)")
            base = RunFolder(self.baseline_run).read_run()
            if base.get("status") != "finished":
                raise PolicyError(f"baseline run {self.baseline_run} is not finished")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Policy:
        """From a .toml or .json file with the field names above (a [policy] table is also accepted)."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"policy file not found: {p}")
        try:
            data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise DataError(f"cannot read policy file {p.name}: {exc}") from None
        if isinstance(data, dict):
            data = data.get("policy", data)
        if not isinstance(data, dict):
            raise DataError(f"policy file {p.name} must hold a table of bounds, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"unknown policy key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except PolicyError as exc:
            raise PolicyError(f"{p.name}: {exc}") from None

    def merged(self, **overrides) -> Policy:
        """This policy with the options that were given on the command line."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Policy(**values)

    def active(self) -> bool:
        return any(v is not None for v in (self.max_drop, self.max_gap, self.min_value, self.min_overlap))


@dataclass
class Outcome:
    """One policy's verdict."""

    name: str
    passed: bool
    measured: float
    bound: float
    detail: str

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.name}: {self.detail}"


def _top_ids(folder: RunFolder, k: int) -> list[str]:
    return [row["unit"] for row in folder.read_csv()[:k]]


def evaluate(policy: Policy, folder: RunFolder, check_game=None) -> list[Outcome]:
    """Check every active bound; `check_game` (the held-out game) is needed for max_drop."""
    run = folder.read_run()
    outcomes: list[Outcome] = []
    held_value = float(np.mean(run["v_all_held_out"]))
    if policy.min_value is not None:
        ok = held_value >= policy.min_value
        outcomes.append(
            Outcome(
                "min_value",
                ok,
                held_value,
                policy.min_value,
                f"{run['metric']} = {held_value:.4f} (bound >= {policy.min_value}; "
                f"{'margin' if ok else 'short by'} {abs(held_value - policy.min_value):.4f})",
            )
        )
    if policy.max_gap is not None:
        if run["metric"] != "fairness":
            raise DataError("the max_gap policy needs --metric fairness")
        ok = held_value <= policy.max_gap
        outcomes.append(
            Outcome(
                "max_gap",
                ok,
                held_value,
                policy.max_gap,
                f"fairness gap {held_value:.4f} (bound <= {policy.max_gap}; "
                f"{'margin' if ok else 'over by'} {abs(held_value - policy.max_gap):.4f})",
            )
        )
    if policy.max_drop is not None:
        if check_game is None:
            raise DataError("the max_drop policy needs the held-out game")
        players = folder.load_players()
        removed = [players.index_of(u) for u in _top_ids(folder, policy.drop_k)]
        before, after = (
            float(np.mean(v)) for v in check_game(np.stack([players.unit_keep(), players.unit_keep(removed)]))
        )
        drop = before - after
        ok = drop <= policy.max_drop
        outcomes.append(
            Outcome(
                "max_drop",
                ok,
                drop,
                policy.max_drop,
                f"removing the top {policy.drop_k} units drops {run['metric']} by {drop:.4f} "
                f"({before:.4f} -> {after:.4f}; bound <= {policy.max_drop}"
                f"{'' if ok else f', over by {drop - policy.max_drop:.4f}'})",
            )
        )
    if policy.min_overlap is not None:
        if not policy.baseline_run:
            raise DataError("the min_overlap policy needs a baseline run folder (--baseline-run)")
        base = RunFolder(policy.baseline_run)
        base.read_run()
        k = len(run.get("top_k") or []) or 10
        mine, theirs = set(_top_ids(folder, k)), set(_top_ids(base, k))
        overlap = len(mine & theirs) / k
        ok = overlap >= policy.min_overlap
        outcomes.append(
            Outcome(
                "min_overlap",
                ok,
                overlap,
                policy.min_overlap,
                f"top-{k} overlap with {base.path} is {overlap:.2f} (bound >= {policy.min_overlap}"
                f"{'' if ok else f', short by {policy.min_overlap - overlap:.2f}'})",
            )
        )
    return outcomes
