"""`onnxshap run`: value every unit of a model and write a run folder."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .audit_options import audit_options, config_from_options
from .errors import friendly_errors


def default_out(model: Path, metric: str) -> Path:
    safe = metric.replace(":", "-").replace("/", "-")
    return Path("runs") / f"{model.stem}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


def print_summary(folder) -> None:
    """What a user wants to see at the end of a run."""
    run = folder.read_run()
    meta = run.get("estimator_metadata", {})
    click.echo(
        f"{run['metric_description']}: v(all) = {run['v_all']:.4g}, v(empty) = {run['v_empty']:.4g} "
        f"on {run['valuation_items']} items; held out: {run['held_out_items']}"
    )
    click.echo(
        f"{run['estimator']}: {run['evaluations']} evaluations in {run['wall_seconds']:.1f} s on "
        f"{run['provider']}; converged: {meta.get('converged')} ({meta.get('stop_reason')})"
    )
    decisions = run.get("decisions")
    if decisions:
        click.echo(
            f"top-{len(run['top_k'])}: {run.get('certain_in_top_k')} certain ({run.get('guarantee')} "
            f"guarantee); {decisions['in']} units certainly in, {decisions['out']} certainly out, "
            f"{decisions['undecided']} undecided"
        )
    rows = folder.read_csv()
    click.echo("top units (value [CI]):")
    for row in rows[: min(10, len(rows))]:
        click.echo(
            f"  {row['unit']:<40} {float(row['value']):+.4f} [{float(row['ci_low']):+.4f}, "
            f"{float(row['ci_high']):+.4f}]"
        )
    curves = run.get("curves", {})
    if curves:
        click.echo(
            "removal-curve area (held-out metric, lower = finds what matters faster): "
            + ", ".join(f"{k} {v:.3f}" for k, v in curves.items())
        )
    click.echo(f"run folder: {folder.path}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default: runs/MODEL-METRIC-TIMESTAMP). A finished run is never overwritten.",
)
@click.option("--resume", is_flag=True, help="Continue the unfinished run in --out from its checkpoint.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@audit_options
@friendly_errors
def run(model: Path, out: Path | None, resume: bool, progress: bool | None, **opts) -> None:
    """Value every unit of MODEL by its Shapley value in the metric game and write a run folder."""
    from onnxshap.audit import run_audit

    if resume and out is None:
        raise click.UsageError("--resume needs --out (the run folder to continue)")
    cfg = config_from_options(model, out or default_out(model, opts["metric"]), resume, **opts)
    cfg.progress = progress
    try:
        folder = run_audit(cfg)
    except KeyboardInterrupt:
        click.echo(
            f"onnxshap: interrupted; continue with: onnxshap run {model} --out {cfg.out} --resume "
            "(and the same options)",
            err=True,
        )
        raise SystemExit(130) from None
    print_summary(folder)
