"""The run folder: a stable contract (shapley.csv, run.json, result, units.json, checkpoint/) other tools read.

shapley.csv   unit,layer,channel,value,ci_low,ci_high,samples,decision   (sorted by value, descending;
              decision: 1 certainly in the top k, -1 certainly out, 0 undecided, empty without a top-k rule)
modes.npy     [n_units, *shape] per-unit Shapley modes (vector games only; + modes_ci_low/high.npy)
run.json      model, model_sha256, metric, v_all, v_empty, estimator, parameters, seed, provider,
              evaluations, wall_seconds, onnxshap_version, top_k (unit ids), curves (AUC per ranking)
result.npz/.json  the full ShapleyResult;   units.json  the unit table;   checkpoint/  for --resume
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.errors import OnnxShapError
from onnxshap.fileio import atomic_write_bytes
from onnxshap.graph.units import UnitTable
from onnxshap.results import ShapleyResult, to_jsonable

CSV_COLUMNS = ("unit", "layer", "channel", "value", "ci_low", "ci_high", "samples", "decision")


class RunFolderError(OnnxShapError):
    """The run folder is missing, incomplete, or would be overwritten."""


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

    @property
    def finished(self) -> bool:
        return self.run_json.is_file() and self.read_run().get("status") == "finished"

    @property
    def unfinished(self) -> bool:
        return (self.checkpoint_dir / "checkpoint.npz").is_file() and not self.finished

    def prepare(self, resume: bool) -> None:
        """Create the folder; refuse to overwrite a finished run or to restart an unfinished one silently."""
        if self.finished:
            raise RunFolderError(f"{self.path} holds a finished run; choose another --out or delete it")
        if self.unfinished and not resume:
            raise RunFolderError(f"{self.path} holds an unfinished run; pass --resume to continue it")
        if resume and not self.unfinished:
            raise RunFolderError(f"nothing to resume in {self.path} (no checkpoint)")
        self.path.mkdir(parents=True, exist_ok=True)

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        text = json.dumps(to_jsonable(data), indent=2).encode()
        atomic_write_bytes(path, lambda fh: fh.write(text))

    def read_run(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise RunFolderError(f"{self.path} is not a run folder (no run.json)")
        try:
            return json.loads(self.run_json.read_text())
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"cannot read {self.run_json}: {exc}") from None

    def write_results(self, result: ShapleyResult, table: UnitTable) -> None:
        """shapley.csv (+ modes.npy for vector games), result.npz/.json and units.json."""
        table.save(self.units_json)
        result.save(self.result_stem)
        scores = result.scores
        lo = result.ci_low if result.ci_low.ndim == 1 else result.ci_low.reshape(len(scores), -1).mean(1)
        hi = result.ci_high if result.ci_high.ndim == 1 else result.ci_high.reshape(len(scores), -1).mean(1)
        ids, layers, channels = table.unit_ids(), table.unit_layers(), table.unit_channels()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for i in np.argsort(-scores, kind="stable"):
            writer.writerow(
                [
                    ids[i],
                    table.layers[layers[i]].layer,
                    int(channels[i]),
                    repr(float(scores[i])),
                    repr(float(lo[i])),
                    repr(float(hi[i])),
                    int(result.samples[i]),
                    "" if result.decision is None else int(result.decision[i]),
                ]
            )
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
        return UnitTable.load(self.units_json)

    def read_csv(self) -> list[dict[str, str]]:
        with open(self.csv, newline="") as fh:
            return list(csv.DictReader(fh))
