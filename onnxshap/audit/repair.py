"""Repairs: choose units from a run (top K, reliably negative, or by id), bake them out, check on held-out data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxshap.audit.runfolder import RunFolder, RunFolderError
from onnxshap.errors import DataError, ModelError


@dataclass
class Repair:
    """What `prune` did."""

    removed: list[str]
    output: Path
    folded: list[str]
    constant_mul: list[str]
    metric: str
    original_value: float
    repaired_value: float
    checked_on: str


def select_units(
    folder: RunFolder,
    top: int | None = None,
    negative: bool = False,
    max_units: int | None = None,
    units: list[str] | None = None,
) -> list[int]:
    """Unit indices to remove: top K by value; or those whose CI lies below 0, most negative first; or by id."""
    if sum(x is not None and x is not False for x in (top, negative or None, units)) != 1:
        raise DataError("choose exactly one of --top K, --negative, --units ID,...")
    result = folder.load_result()
    table = folder.load_units()
    scores = result.scores
    if top is not None:
        if top < 1:
            raise DataError("--top needs a positive number of units")
        chosen = list(np.argsort(-scores, kind="stable")[:top])
    elif negative:
        high = result.ci_high if result.ci_high.ndim == 1 else result.ci_high.reshape(len(scores), -1).max(1)
        below = np.flatnonzero(high < 0)
        chosen = list(below[np.argsort(scores[below], kind="stable")])
    else:
        try:
            chosen = [table.index_of(u) for u in units]
        except KeyError as exc:
            raise DataError(f"--units: {exc.args[0]}") from None
    if max_units is not None:
        chosen = chosen[:max_units]
    return [int(i) for i in chosen]


def _plain_metric(model_path: Path, check, provider: str) -> float:
    """The check game's metric computed with the plain (mask-free) model file in a stock session."""
    from onnxshap.runtime.evaluator import prepare_inputs, run_items
    from onnxshap.runtime.session import make_session

    session = make_session(model_path, provider).session
    feeds = prepare_inputs(session, check.inputs, set(), fixed_batch=True)
    out = run_items(session, [check.output], feeds)[0]
    value = check.metric(out[None], check.labels, check.groups)[0]
    return float(np.mean(value))


def prune(
    model: str | os.PathLike,
    run_dir: str | os.PathLike,
    removed: list[int],
    output: str | os.PathLike,
    provider: str = "cpu",
) -> Repair:
    """Write `output`: the model with `removed` units baked out; report the metric before/after (held out)."""
    from onnxshap.audit.runner import config_from_run, replay_games
    from onnxshap.graph import save_model, sha256_of
    from onnxshap.graph.bake import bake_removed

    folder = RunFolder(run_dir)
    run = folder.read_run()
    if run.get("status") != "finished":
        raise RunFolderError(f"{folder.path} holds no finished run")
    model = Path(model)
    if not model.is_file():
        raise ModelError(f"model file not found: {model}")
    if sha256_of(model) != run.get("model_sha256"):
        raise ModelError(f"{model.name} is not the model audited in {folder.path} (sha256 differs)")
    out = Path(output)
    if out.resolve() == model.resolve():
        raise ModelError("refusing to overwrite the input model; choose another -o")
    if not removed:
        raise DataError("no units selected to remove")
    cfg = config_from_run(run)
    inst, _, check = replay_games(cfg, folder, model=model, provider=provider)
    keep = np.ones(inst.n_units, bool)
    keep[removed] = False
    baked, summary = bake_removed(inst.source, inst.units, keep)
    save_model(baked, out, source=inst.source)
    original = float(np.mean(check(np.ones((1, inst.n_units), bool))[0]))
    repaired = _plain_metric(out, check, provider)
    ids = inst.units.unit_ids()
    where = "held-out split" if run.get("held_out_items") else "valuation data"
    return Repair(
        [ids[i] for i in removed],
        out,
        summary["folded"],
        summary["constant_mul"],
        cfg.metric,
        original,
        repaired,
        where,
    )
