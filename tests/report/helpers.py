"""Helpers for the report tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "models"


def copy_run(src: Path, dst: Path, **run_json_changes) -> Path:
    """A copy of a run folder without its report, with run.json keys replaced."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("figures", "report.html"))
    if run_json_changes:
        info = json.loads((dst / "run.json").read_text())
        info.update(run_json_changes)
        (dst / "run.json").write_text(json.dumps(info))
    return dst
