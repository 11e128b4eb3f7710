"""The run folder: a stable contract (shapley.csv, run.json, result, units.json, checkpoint/) other tools read.

shapley.csv   unit,layer,channel,value,ci_low,ci_high,samples,decision   (one row per player, by value
              descending; grouped players: unit = the group's name, channel empty unless it is one unit,
              + members; decision: 1 certainly in the top k, -1 certainly out, 0 undecided, empty without a
              top-k rule)
players.json  who the players are (spec, members, lesioned units; onnxshap.players)
means.npy     --removal mean: each unit's mean activation, what a removed unit outputs
modes.npy     [n_units, *shape] per-unit Shapley modes (vector games only; + modes_ci_low/high.npy)
run.json      model, model_sha256, metric, v_all, v_empty, estimator, parameters, seed, provider,
              evaluations, wall_seconds, onnxshap_version, top_k (unit ids), curves (AUC per ranking)
result.npz/.json  the full ShapleyResult;   units.json  the unit table;   checkpoint/  for --resume
curves.json   the removal curves;   interactions.csv/.json  written by `onnxshap interactions`
.onnxshap.lock    the writer lock (see RunFolder.locked)

This module is the one reader of run folders: the audit commands, the report and check read a run through
RunFolder. Reading a run folder never imports or runs code (a custom metric named in run.json is only a
name here; see onnxshap.audit.runner.config_from_run).

One writer at a time: whatever writes into a run folder (run, resume, check's audit, report) holds an
exclusive flock on .onnxshap.lock; the kernel releases it when the process ends, however it ends
(kill -9 included), so a folder is never left locked. Readers (prune, check --baseline-run) take no
lock: a finished run's results are never written again.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.errors import OnnxShapError
from onnxshap.fileio import atomic_write_bytes
from onnxshap.graph.units import UnitTable
from onnxshap.players import PlayerTable, channel_players
from onnxshap.results import ShapleyResult, to_jsonable

CSV_COLUMNS = ("unit", "layer", "channel", "value", "ci_low", "ci_high", "samples", "decision")
GROUP_COLUMNS = (*CSV_COLUMNS, "members")  # shapley.csv of grouped players
LOCK_NAME = ".onnxshap.lock"
# What a run leaves before its first checkpoint: nothing to keep (the attack cache is content-keyed).
EARLY_ENTRIES = frozenset({LOCK_NAME, "run.json", "adversarial"})


class RunFolderError(OnnxShapError):
    """The run folder is missing, incomplete, or would be overwritten."""


class RunFolderBusy(RunFolderError):
    """Another process is writing the run folder."""


def reliably_negative(ci_high: float | np.ndarray) -> bool:
    """The repair-candidate rule, the one place it is written (`prune --negative`; the report's highlighted
    units): the player's whole confidence interval lies below zero; for a vector game, every element's.
    `ci_high`: the player's upper bound(s), a number or the array of its elements' bounds."""
    return bool(np.all(np.asarray(ci_high, dtype=np.float64) < 0))


@dataclass
class UnitRow:
    """One row of shapley.csv, typed, with the player's index in the player table."""

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
    # a repair candidate (see `reliably_negative`); None: from ci_high (a vector game's rows get it from
    # every element's interval, which the row's mean interval does not show)
    reliably_negative: bool | None = field(default=None)

    def __post_init__(self) -> None:
        if self.reliably_negative is None:
            self.reliably_negative = reliably_negative(self.ci_high)


def new_run_path(base: str | os.PathLike) -> Path:
    """Create and return a fresh folder: `base`, else `base-2`, `base-3`, ... (os.mkdir is atomic, so two
    processes asking for the same name at the same moment get different folders)."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


class RunFolder:
    """Paths and reading/writing of one audit run."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    csv = property(lambda self: self.path / "shapley.csv")
    run_json = property(lambda self: self.path / "run.json")
    units_json = property(lambda self: self.path / "units.json")
    result_stem = property(lambda self: self.path / "result")
    checkpoint_dir = property(lambda self: self.path / "checkpoint")
    curves_json = property(lambda self: self.path / "curves.json")
    modes = property(lambda self: self.path / "modes.npy")
    modes_ci_high = property(lambda self: self.path / "modes_ci_high.npy")
    players_json = property(lambda self: self.path / "players.json")
    means_npy = property(lambda self: self.path / "means.npy")
    interactions_csv = property(lambda self: self.path / "interactions.csv")
    interactions_json = property(lambda self: self.path / "interactions.json")

    @property
    def finished(self) -> bool:
        return self.run_json.is_file() and self.read_run().get("status") == "finished"

    @property
    def unfinished(self) -> bool:
        return (self.checkpoint_dir / "checkpoint.npz").is_file() and not self.finished

    lock_file = property(lambda self: self.path / LOCK_NAME)

    @contextlib.contextmanager
    def locked(self, create: bool = False) -> Iterator[RunFolder]:
        """Hold the folder's writer lock (exclusive, non-blocking); RunFolderBusy when another process
        holds it. `create`: make the folder first (for a new run)."""
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise RunFolderError(f"{self.path} is not a run folder (no such folder)")
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise RunFolderBusy(
                    f"{self.path} is being written by another onnxshap process{who}; "
                    "wait for it to end or choose another folder"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield self
        finally:
            os.close(fd)  # releases the lock; the file stays (unlinking it would race with a new writer)

    def prepare(self, resume: bool) -> None:
        """Check, with the lock held, that the folder may take this run: a resume needs a checkpoint; a new
        run needs an empty folder (or one left by a run stopped before its first checkpoint). A finished
        run, an unfinished one without --resume, and anything else are refused: nothing is overwritten."""
        if self.finished:
            raise RunFolderError(f"{self.path} holds a finished run; choose another --out or delete it")
        if resume:
            if not self.unfinished:
                raise RunFolderError(f"nothing to resume in {self.path} (no checkpoint)")
            return
        if self.unfinished:
            raise RunFolderError(
                f"{self.path} holds an unfinished run{self._status()}; pass --resume to continue it"
            )
        entries = sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []
        early = set(entries) <= EARLY_ENTRIES and self._written_by_onnxshap()
        if not early and set(entries) - {LOCK_NAME}:
            found = [e for e in entries if e != LOCK_NAME]
            shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise RunFolderError(
                f"{self.path} is not empty ({shown}) and holds no "
                "onnxshap run to continue; choose another --out (a run folder is never overwritten)"
            )
        self.path.mkdir(parents=True, exist_ok=True)

    def _written_by_onnxshap(self) -> bool:
        if not self.run_json.is_file():
            return True
        with contextlib.suppress(RunFolderError):
            run = self.read_run()
            return isinstance(run, dict) and "onnxshap_version" in run and run.get("status") != "finished"
        return False

    def _status(self) -> str:
        with contextlib.suppress(RunFolderError, AttributeError):
            run = self.read_run()
            error = f": {run['error']}" if run.get("error") else ""
            return f" (status {run.get('status')}{error})"
        return ""

    def mark(self, status: str, error: str | None = None) -> None:
        """Record in run.json how the run stopped ("interrupted", "failed" with the error)."""
        run = self.read_run() if self.run_json.is_file() else {}
        run["status"] = status
        run.pop("error", None)
        if error:
            run["error"] = error
        self.write_json(self.run_json, run)

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        text = json.dumps(to_jsonable(data), indent=2).encode()
        atomic_write_bytes(path, lambda fh: fh.write(text))

    def read_run(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise RunFolderError(f"{self.path} is not a run folder (no run.json)")
        return self.read_json(self.run_json)

    def read_json(self, path: Path) -> dict[str, Any]:
        """A JSON file of the folder (run.json, curves.json, interactions.json)."""
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"cannot read {path.name} in {self.path}: {exc}") from None

    def read_curves(self) -> dict[str, Any]:
        """curves.json: the removal curves of every ranking."""
        return self.read_json(self.curves_json)

    def write_results(
        self, result: ShapleyResult, table: UnitTable, players: PlayerTable | None = None
    ) -> None:
        """shapley.csv (+ modes.npy for vector games), result.npz/.json, units.json and players.json."""
        players = players or channel_players(table)
        table.save(self.units_json)
        players.save(self.players_json, table)
        result.save(self.result_stem)
        scores = result.scores
        lo = result.ci_low if result.ci_low.ndim == 1 else result.ci_low.reshape(len(scores), -1).mean(1)
        hi = result.ci_high if result.ci_high.ndim == 1 else result.ci_high.reshape(len(scores), -1).mean(1)
        channels = table.unit_channels()
        grouped = players.grouped
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(GROUP_COLUMNS if grouped else CSV_COLUMNS)
        for i in np.argsort(-scores, kind="stable"):
            unit = players.single_unit(int(i))
            row = [
                players.names[i],
                players.layers[i],
                "" if unit is None else int(channels[unit]),
                repr(float(scores[i])),
                repr(float(lo[i])),
                repr(float(hi[i])),
                int(result.samples[i]),
                "" if result.decision is None else int(result.decision[i]),
            ]
            writer.writerow([*row, players.member_text(int(i), table)] if grouped else row)
        data = buf.getvalue().encode()
        atomic_write_bytes(self.csv, lambda fh: fh.write(data))
        if result.values.ndim > 1:
            for path, arr in (
                (self.modes, result.values),
                (self.path / "modes_ci_low.npy", result.ci_low),
                (self.path / "modes_ci_high.npy", result.ci_high),
            ):
                atomic_write_bytes(path, lambda fh, a=arr: np.save(fh, a))

    def load_result(self) -> ShapleyResult:
        try:
            return ShapleyResult.load(self.result_stem)
        except (FileNotFoundError, ValueError) as exc:
            raise RunFolderError(f"{self.path}: {exc}") from None

    def load_units(self) -> UnitTable:
        if not self.units_json.is_file():
            raise RunFolderError(f"{self.path} has no units.json")
        try:
            return UnitTable.load(self.units_json)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunFolderError(f"cannot read units.json in {self.path}: {exc}") from None

    def load_players(self, table: UnitTable | None = None) -> PlayerTable:
        """The run's players (one per unit for runs without players.json)."""
        try:
            return PlayerTable.load(self.players_json, table or self.load_units())
        except OnnxShapError as exc:
            raise RunFolderError(f"{self.path}: {exc}") from None

    def write_means(self, means: np.ndarray) -> None:
        atomic_write_bytes(self.means_npy, lambda fh: np.save(fh, np.asarray(means, dtype=np.float64)))

    def load_means(self) -> np.ndarray:
        """The per-unit means a --removal mean run was valued with."""
        if not self.means_npy.is_file():
            raise RunFolderError(f"{self.path} has no means.npy (needed to replay --removal mean)")
        return np.load(self.means_npy, allow_pickle=False)

    def check_consistent(self) -> None:
        """Refuse (one line) a folder whose run.json, result.npz/.json, shapley.csv and units.json do not
        describe one run: unit count, unit ids, values and ranking, model sha256, evaluations."""
        run = self.read_run()
        result, table = self.load_result(), self.load_units()
        try:
            rows = self.read_csv()
        except (OSError, csv.Error) as exc:
            raise RunFolderError(f"cannot read {self.csv}: {exc}") from None
        players = self.load_players(table)
        scores, ids = result.scores, list(players.names)
        problem = None
        if len(scores) != players.n_players:
            problem = f"result.npz has {len(scores)} players, units.json / players.json {players.n_players}"
        elif len(rows) != players.n_players:
            problem = f"shapley.csv has {len(rows)} players, units.json / players.json {players.n_players}"
        elif run.get("n_units", table.n_units) != table.n_units:
            problem = f"run.json has {run.get('n_units')} units, units.json {table.n_units}"
        elif table.model_sha256 != run.get("model_sha256"):
            problem = "units.json and run.json name different models (sha256)"
        elif "evaluations" in run and run["evaluations"] != result.evaluations:
            problem = f"run.json counts {run['evaluations']} evaluations, result.npz {result.evaluations}"
        elif [r.get("unit") for r in rows] != [ids[i] for i in np.argsort(-scores, kind="stable")]:
            problem = "shapley.csv ranks the units differently from result.npz"
        else:
            try:
                values = np.array([float(r["value"]) for r in rows])
            except (KeyError, TypeError, ValueError):
                values = None
            ranked = scores[np.argsort(-scores, kind="stable")]
            if values is None or not np.array_equal(values, ranked, equal_nan=True):
                problem = "shapley.csv's values differ from result.npz's"
        if problem:
            raise RunFolderError(
                f"{self.path} does not hold one run ({problem}): its files come from different runs; "
                "refusing to use it"
            )

    def read_csv(self) -> list[dict[str, str]]:
        """shapley.csv as written (strings), by value descending."""
        with open(self.csv, newline="") as fh:
            return list(csv.DictReader(fh))

    def read_rows(self, players: PlayerTable | None = None) -> list[UnitRow]:
        """shapley.csv as typed rows, in its order (by value, descending)."""
        players = players or self.load_players()
        highs = self._element_highs(players.n_players)
        rows: list[UnitRow] = []
        try:
            for rec in self.read_csv():
                index = players.index_of(rec["unit"])
                high = float(rec["ci_high"])
                rows.append(
                    UnitRow(
                        unit=rec["unit"],
                        layer=rec["layer"],
                        channel=int(rec["channel"]) if rec["channel"] != "" else None,
                        value=float(rec["value"]),
                        ci_low=float(rec["ci_low"]),
                        ci_high=high,
                        samples=int(rec["samples"]),
                        index=index,
                        unit_index=players.single_unit(index),
                        members=rec.get("members") or "",
                        decision=int(rec["decision"]) if rec.get("decision") not in (None, "") else None,
                        reliably_negative=reliably_negative(high if highs is None else highs[index]),
                    )
                )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise RunFolderError(
                f"{self.path}: shapley.csv does not match the run folder format ({exc})"
            ) from None
        return rows

    def load_modes(self, n_players: int) -> np.ndarray | None:
        """modes.npy, [n_players, *shape] (vector games), or None for a scalar game."""
        return self._load_per_player(self.modes, n_players)

    def _element_highs(self, n_players: int) -> np.ndarray | None:
        """A vector game's upper bounds per player and element (modes_ci_high.npy); None otherwise."""
        if not self.modes.is_file():
            return None
        return self._load_per_player(self.modes_ci_high, n_players)

    def _load_per_player(self, path: Path, n_players: int) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"cannot read {path.name} in {self.path}: {exc}") from None
        if arr.ndim < 2 or len(arr) != n_players:
            raise RunFolderError(
                f"{self.path}: {path.name} has shape {list(arr.shape)}, not [n_players, ...]"
            )
        return arr

    def read_interactions(self) -> list[dict[str, str]] | None:
        """interactions.csv (`onnxshap interactions`), or None when there is none."""
        if not self.interactions_csv.is_file():
            return None
        try:
            with open(self.interactions_csv, newline="") as fh:
                return list(csv.DictReader(fh))
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"cannot read interactions.csv in {self.path}: {exc}") from None

    def read_interactions_meta(self) -> dict[str, Any]:
        """interactions.json (method, budget, guarantee), or {} when there is none."""
        return self.read_json(self.interactions_json) if self.interactions_json.is_file() else {}
