"""`onnxshap run`: value every unit of a model and write a run folder."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from .errors import friendly_errors
from .option_groups import GroupedCommand, audit_options, config_from_options


def default_out(model: Path, metric: str) -> Path:
    """A new folder runs/MODEL-METRIC-TIMESTAMP (-2, -3, ... when that name is taken), created now."""
    from onnxshap.audit.runfolder import new_run_path

    safe = metric.replace(":", "-").replace("/", "-")
    return new_run_path(Path("runs") / f"{model.stem}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}")


def _figure(value) -> str:
    """A value of run.json: a number, or a vector game's mean over its elements (with min and max)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    return f"{arr.mean():.4g} (mean; min {arr.min():.4g}, max {arr.max():.4g})"


def print_summary(folder) -> None:
    """What a user wants to see at the end of a run."""
    run = folder.read_run()
    meta = run.get("estimator_metadata", {})
    shape = list(np.shape(run["v_all"]))
    if shape:
        size = int(np.prod(shape))
        click.echo(
            f"{run['metric_description']} is a vector game: each unit's Shapley mode has shape {shape} "
            f"(modes.npy); the figures below are means over its {size} elements"
        )
    click.echo(
        f"{run['metric_description']}: v(all) = {_figure(run['v_all'])}, v(empty) = {_figure(run['v_empty'])} "
        f"on {run['valuation_items']} items; held out: {run['held_out_items']}"
    )
    click.echo(
        f"{run['estimator']}: {run['evaluations']} evaluations in "
        f"{run.get('estimation_seconds', run['wall_seconds']):.1f} s on "
        f"{run['provider']}; converged: {meta.get('converged')} ({meta.get('stop_reason')})"
    )
    if meta.get("permutations") == 0:
        click.echo(
            "the estimation completed no round of permutations in its budget: the values below rest on no "
            "sample (give it more --max-seconds, or fewer --images per permutation)"
        )
    plan = run.get("plan") or {}
    if plan.get("max_seconds") is not None:
        click.echo(
            f"whole command: {plan['wall_seconds']:.1f} s of --max-seconds {plan['max_seconds']:g}"
            + "".join(f"; {name} skipped ({why})" for name, why in plan.get("skipped", {}).items())
        )
    decisions = run.get("decisions")
    if decisions:
        click.echo(
            f"top-{len(run['top_k'])}: {run.get('certain_in_top_k')} certain ({run.get('guarantee')} "
            f"guarantee); {decisions['in']} units certainly in, {decisions['out']} certainly out, "
            f"{decisions['undecided']} undecided"
        )
        settle = meta.get("settle_budget_estimate")
        if isinstance(settle, dict) and decisions["undecided"]:
            click.echo(
                f"not settled within the budget: roughly {settle.get('low', 0):,} to {settle.get('high', 0):,} "
                "more evaluations would settle it (heuristic extrapolation from the interval widths; "
                "--max-evals / --max-seconds)"
            )
    focus = meta.get("focus")
    if isinstance(focus, dict) and not focus["draws"]:
        click.echo(
            "focus: no draws within the budget (the walks' first round took it): values from the walks"
        )
    elif isinstance(focus, dict):
        draws = f"{focus['draws']} draw{'s' * (focus['draws'] != 1)}"
        click.echo(
            f"focus: {len(focus['contenders'])} contenders, {draws} over removal positions "
            f"1..{focus['depth'] - 1} ({focus['evaluations']:,} evaluations); {len(focus['focused_units'])} "
            "units valued by the draws (a heuristic choice of units; intervals and decisions from the walks)"
        )
    rows = folder.read_csv()
    label = "units" if run.get("players", "channels") == "channels" else f"players ({run['players']})"
    if run.get("lesion"):
        label += f", lesioned: {', '.join(run['lesion'])}"
    what = "mean of the mode [mean of the element intervals]" if shape else "value [CI]"
    click.echo(f"top {label} ({what}):")
    for row in rows[: min(10, len(rows))]:
        click.echo(
            f"  {row['unit']:<40} {float(row['value']):+.4f} [{float(row['ci_low']):+.4f}, "
            f"{float(row['ci_high']):+.4f}]"
        )
    curves = run.get("curves", {})
    if curves:
        click.echo(
            f"removal-curve area (held-out metric{', mean over elements' if shape else ''}, "
            "lower = finds what matters faster): " + ", ".join(f"{k} {v:.3f}" for k, v in curves.items())
        )
    click.echo(f"run folder: {folder.path}")


@click.command(cls=GroupedCommand)
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder: missing or empty (default: a new runs/MODEL-METRIC-TIMESTAMP); with --resume, the "
    "unfinished run to continue. A run folder is never overwritten and has one writer at a time.",
)
@click.option("--resume", is_flag=True, help="Continue the unfinished run in --out from its checkpoint.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@audit_options
@friendly_errors
def run(model: Path, out: Path | None, resume: bool, progress: bool | None, **opts) -> None:
    """Value every unit of MODEL by its Shapley value in the metric game and write a run folder."""
    from onnxshap.audit import RunFolder, run_audit
    from onnxshap.interrupts import Terminated, sigterm_raises

    if resume and out is None:
        raise click.UsageError("--resume needs --out (the run folder to continue)")
    cfg = config_from_options(model, out or default_out(model, opts["metric"]), resume, **opts)
    cfg.progress = progress
    try:
        with sigterm_raises():
            folder = run_audit(cfg)
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        if RunFolder(cfg.out).unfinished:
            hint = f"continue with: onnxshap run {model} --out {cfg.out} --resume (and the same options)"
        else:
            hint = f"stopped before its first checkpoint, nothing to resume: run again with --out {cfg.out}"
        click.echo(f"onnxshap: {what}; {hint}", err=True)
        raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None
    print_summary(folder)
