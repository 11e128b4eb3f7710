"""A finished run folder, read through RunFolder, as one object the figures and the HTML page draw from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.audit.runfolder import RunFolder, RunFolderError, UnitRow
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
    interactions_meta: dict[str, Any] = field(default_factory=dict)  # interactions.json
    by_id: dict[str, UnitRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {row.unit: row for row in self.rows}

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

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


def load_run(path: str | os.PathLike) -> RunData:
    """Read and check a finished run folder (through RunFolder, the one reader of run folders); ReportError
    (one line) when it cannot be reported on."""
    folder = RunFolder(path)
    if not folder.path.exists():
        raise ReportError(f"run folder not found: {folder.path}")
    if not folder.path.is_dir():
        raise ReportError(f"{folder.path} is not a folder (give the run folder written by `onnxshap run`)")
    try:
        info = folder.read_run()
        status = info.get("status")
        if status != "finished":
            raise ReportError(
                f"{folder.path} holds an unfinished run (status {status!r}); "
                f"finish it with `onnxshap run ... --out {folder.path} --resume`"
            )
        for needed in (folder.csv, folder.units_json, folder.curves_json):
            if not needed.is_file():
                raise ReportError(f"{folder.path} is incomplete: {needed.name} is missing")
        units = folder.load_units()
        players = folder.load_players(units)
        rows = folder.read_rows(players)
        curves = folder.read_curves()
        modes = folder.load_modes(players.n_players)
        pairs = folder.read_interactions()
        pairs_meta = folder.read_interactions_meta() if pairs else {}
    except RunFolderError as exc:
        raise ReportError(str(exc)) from None
    return RunData(
        path=folder.path,
        info=info,
        curves=curves,
        rows=rows,
        units=units,
        modes=modes,
        players=players,
        interactions=pairs,
        interactions_meta=pairs_meta,
    )
