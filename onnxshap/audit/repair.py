"""Repairs: choose units from a run (top K, reliably negative, or by id), bake them out, check on held-out data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxshap.audit.runfolder import RunFolder, RunFolderError, reliably_negative
from onnxshap.audit.runner import UNMEASURED, is_custom
from onnxshap.errors import DataError, ModelError


@dataclass
class Repair:
    """What `prune` did."""

    removed: list[str]
    output: Path
    folded: list[str]
    constant_mul: list[str]
    metric: str
    original_value: float | None  # None: not measured (a custom metric named only by the run folder)
    repaired_value: float | None
    checked_on: str


def select_units(
    folder: RunFolder,
    top: int | None = None,
    negative: bool = False,
    max_units: int | None = None,
    units: list[str] | None = None,
) -> list[int]:
    """Unit indices to remove: the members of the top K players by value; or of those whose CI lies below 0,
    most negative first; or of the players named (ids as in shapley.csv: unit ids, or group names); K and
    --max count players. A run with lesions also removes its lesioned units (its values hold only with them
    removed)."""
    if sum(x is not None and x is not False for x in (top, negative or None, units)) != 1:
        raise DataError("choose exactly one of --top K, --negative, --units ID,...")
    folder.check_consistent()
    result = folder.load_result()
    table = folder.load_units()
    players = folder.load_players(table)
    scores = result.scores
    if top is not None:
        if top < 1:
            raise DataError("--top needs a positive number of units")
        chosen = list(np.argsort(-scores, kind="stable")[:top])
    elif negative:
        below = np.flatnonzero([reliably_negative(high) for high in result.ci_high])
        chosen = list(below[np.argsort(scores[below], kind="stable")])
    else:
        try:
            chosen = [players.index_of(u) for u in units]
        except KeyError as exc:
            raise DataError(f"--units: {exc.args[0]}") from None
    if max_units is not None:
        chosen = chosen[:max_units]
    if not chosen:
        return []
    keep = players.unit_keep(chosen)
    return [int(i) for i in np.flatnonzero(~keep)]


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
    metric: str | None = None,
) -> Repair:
    """Write `output`: the model with `removed` units baked out; report the metric before/after (held out).

    `metric` measures the repair (default: the run's). A `custom:` metric runs the named code, so it is
    never taken from the run folder: without `metric`, such a run's repair is written but not measured.
    """
    from onnxshap.audit.runner import config_from_run, reopen
    from onnxshap.graph import load_model, save_model, sha256_of
    from onnxshap.graph.bake import bake_removed

    folder = RunFolder(run_dir)
    run = folder.read_run()
    if run.get("status") != "finished":
        raise RunFolderError(f"{folder.path} holds no finished run")
    folder.check_consistent()
    model = Path(model)
    if not model.is_file():
        raise ModelError(f"model file not found: {model}")
    loaded = load_model(model)
    if sha256_of(model) != run.get("model_sha256") or _external_sha256(loaded) != run.get(
        "model_data_sha256"
    ):
        raise ModelError(f"{model.name} is not the model audited in {folder.path} (sha256 differs)")
    out = Path(output)
    if out.resolve() == model.resolve():
        raise ModelError("refusing to overwrite the input model; choose another -o")
    if not removed:
        raise DataError("no units selected to remove")
    measure = metric is not None or not is_custom(run.get("metric", ""))
    cfg = config_from_run(run, metric=metric if measure else UNMEASURED)
    table = folder.load_units()
    keep = np.ones(table.n_units, bool)
    keep[removed] = False
    means = folder.load_means() if cfg.removal == "mean" else None
    baked, summary = bake_removed(
        loaded, table, keep, means=means
    )  # refuses a model whose units are not the table's
    check = reopen(folder, cfg, model=model, provider=provider).games()[2] if measure else None
    save_model(baked, out, source=loaded)
    original = repaired = None
    if check is not None:
        original = float(np.mean(check(np.ones((1, table.n_units), bool))[0]))
        repaired = _plain_metric(out, check, provider)
    ids = table.unit_ids()
    where = "held-out split" if run.get("held_out_items") else "valuation data"
    return Repair(
        [ids[i] for i in removed],
        out,
        summary["folded"],
        summary["constant_mul"],
        cfg.metric if measure else run.get("metric", ""),
        original,
        repaired,
        where,
    )


def _external_sha256(loaded) -> dict[str, str] | None:
    from onnxshap.fileio import sha256_of

    if not loaded.has_external_data:
        return None
    return {f: sha256_of(loaded.base_dir / f) for f in loaded.external_files}
