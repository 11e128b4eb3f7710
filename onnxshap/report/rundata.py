"""Read a finished run folder into one object the figures and the HTML page draw from."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.errors import OnnxShapError
from onnxshap.graph.units import UnitTable
from onnxshap.players import PlayerTable

# Rankings in the order the report lists them; unknown names (future baselines) follow.
RANKING_ORDER = ("shapley", "negative", "loo", "activation", "weight", "random")
NEGATIVE_LIMIT = 15  # most negative units shown (repair candidates are listed in addition)
RANKING_LABELS = {
    "shapley": "Shapley (highest first)",
    "negative": "Shapley, most negative first",
    "loo": "leave-one-out",
    "activation": "mean |activation|",
    "weight": "weight L1 norm",
    "random": "random (mean of 5)",
}


class ReportError(OnnxShapError):
    """The run folder cannot be reported on (missing, not a run folder, unfinished or incomplete)."""


@dataclass
class UnitRow:
    """One row of shapley.csv, with the unit's flat index in the unit table."""

    unit: str  # the player's name: a unit id, or a group's name
    layer: str  # "" when a group spans several layers
    channel: int | None  # None for a player of several units
    value: float
    ci_low: float
    ci_high: float
    samples: int
    index: int  # player index (row of result.npz / modes.npy)
    unit_index: int | None = None  # the unit's index in units.json when the player is one unit
    members: str = ""  # grouped players: member units, compact (LAYER:A-B;...)
    decision: int | None = None  # 1 certainly in the top k, -1 certainly out, 0 undecided, None: no rule

    @property
    def reliably_negative(self) -> bool:
        """The whole confidence interval lies below zero: a repair candidate (`prune --negative`)."""
        return self.ci_high < 0


@dataclass
class RunData:
    """Everything a report needs from a run folder."""

    path: Path
    info: dict[str, Any]
    curves: dict[str, Any]
    rows: list[UnitRow]  # sorted by value, descending (as in shapley.csv)
    units: UnitTable
    modes: np.ndarray | None = None
    players: PlayerTable | None = None
    interactions: list[dict[str, str]] | None = None  # interactions.csv rows (`onnxshap interactions`)
    by_id: dict[str, UnitRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {row.unit: row for row in self.rows}

    @property
    def config(self) -> dict[str, Any]:
        return self.info.get("config") or {}

    @property
    def vector(self) -> bool:
        """A vector game (Shapley modes) rather than a scalar one."""
        return self.modes is not None

    def top_rows(self) -> list[UnitRow]:
        """The run's top-k units (run.json top_k), in that order."""
        ids = self.info.get("top_k") or []
        return [self.by_id[u] for u in ids if u in self.by_id]

    def negative_rows(self, limit: int = NEGATIVE_LIMIT, candidates: int = 100) -> list[UnitRow]:
        """The `limit` most negative units (value < 0) plus up to `candidates` repair candidates, most negative
        first."""
        negative = [row for row in reversed(self.rows) if row.value < 0]
        keep = {row.unit for row in negative[:limit]}
        keep |= {row.unit for row in negative if row.reliably_negative}
        return [row for row in negative if row.unit in keep][: limit + candidates]

    def repair_candidates(self) -> list[UnitRow]:
        """Units whose confidence interval lies entirely below zero, most negative first."""
        return [row for row in reversed(self.rows) if row.reliably_negative]

    def value_bound(self) -> float | None:
        """The largest |value| the game allows (its value range R), when the run knows it."""
        r = (self.info.get("estimator_metadata") or {}).get("value_range")
        try:
            return float(r) if r is not None and float(r) > 0 else None
        except (TypeError, ValueError):
            return None

    def rankings(self) -> list[str]:
        """Ranking names of the removal curves, in report order."""
        names = list(self.curves.get("curves", {}))
        known = [n for n in RANKING_ORDER if n in names]
        return known + [n for n in names if n not in RANKING_ORDER]


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path.name} in {folder}: {exc}") from None


def _read_rows(path: Path, players: PlayerTable, folder: Path) -> list[UnitRow]:
    rows: list[UnitRow] = []
    try:
        with open(path, newline="") as fh:
            for rec in csv.DictReader(fh):
                index = players.index_of(rec["unit"])
                rows.append(
                    UnitRow(
                        unit=rec["unit"],
                        layer=rec["layer"],
                        channel=int(rec["channel"]) if rec["channel"] != "" else None,
                        value=float(rec["value"]),
                        ci_low=float(rec["ci_low"]),
                        ci_high=float(rec["ci_high"]),
                        samples=int(rec["samples"]),
                        index=index,
                        unit_index=players.single_unit(index),
                        members=rec.get("members") or "",
                        decision=int(rec["decision"]) if rec.get("decision") not in (None, "") else None,
                    )
                )
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ReportError(f"{folder}: shapley.csv does not match the run folder format ({exc})") from None
    return rows


def load_run(path: str | os.PathLike) -> RunData:
    """Read and check a finished run folder; ReportError (one line) when it cannot be reported on."""
    folder = Path(path)
    if not folder.exists():
        raise ReportError(f"run folder not found: {folder}")
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder (give the run folder written by `onnxshap run`)")
    run_json = folder / "run.json"
    if not run_json.is_file():
        raise ReportError(f"{folder} is not a run folder (no run.json)")
    info = _read_json(run_json, folder)
    status = info.get("status")
    if status != "finished":
        raise ReportError(
            f"{folder} holds an unfinished run (status {status!r}); "
            f"finish it with `onnxshap run ... --out {folder} --resume`"
        )
    for name in ("shapley.csv", "units.json", "curves.json"):
        if not (folder / name).is_file():
            raise ReportError(f"{folder} is incomplete: {name} is missing")
    try:
        units = UnitTable.load(folder / "units.json")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"cannot read units.json in {folder}: {exc}") from None
    try:
        players = PlayerTable.load(folder / "players.json", units)
    except OnnxShapError as exc:
        raise ReportError(f"{folder}: {exc}") from None
    rows = _read_rows(folder / "shapley.csv", players, folder)
    curves = _read_json(folder / "curves.json", folder)
    modes = None
    if (folder / "modes.npy").is_file():
        try:
            modes = np.load(folder / "modes.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ReportError(f"cannot read modes.npy in {folder}: {exc}") from None
        if modes.ndim < 2 or len(modes) != players.n_players:
            raise ReportError(f"{folder}: modes.npy has shape {list(modes.shape)}, not [n_players, ...]")
    from onnxshap.audit.interactions import read_interactions

    try:
        pairs = read_interactions(folder)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read interactions.csv in {folder}: {exc}") from None
    return RunData(
        path=folder,
        info=info,
        curves=curves,
        rows=rows,
        units=units,
        modes=modes,
        players=players,
        interactions=pairs,
    )
