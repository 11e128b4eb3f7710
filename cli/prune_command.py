"""`onnxshap prune`: bake units chosen from a run out of the model (the repair)."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import fail, friendly_errors


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The run folder of an `onnxshap run` on MODEL.",
)
@click.option("--top", type=int, default=None, help="Remove the K highest-valued units.")
@click.option(
    "--negative",
    is_flag=True,
    help="Remove the units whose confidence interval lies entirely below 0, most negative first.",
)
@click.option("--units", "unit_ids", default=None, help="Remove these units: ID,ID,... (as in shapley.csv).")
@click.option("--max", "max_units", type=int, default=None, help="Remove at most N units.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--provider", default="cpu", show_default=True, help="auto | cpu | cuda (for the check).")
@click.option(
    "--metric",
    default=None,
    help="Metric that measures the repair on the held-out split (default: the run's). Required to measure "
    "a custom: metric: it runs the named code, which prune never takes from a run folder.",
)
@friendly_errors
def prune(
    model: Path,
    run_dir: Path,
    top: int | None,
    negative: bool,
    unit_ids: str | None,
    max_units: int | None,
    output: Path,
    provider: str,
    metric: str | None,
) -> None:
    """Write OUTPUT: MODEL with the chosen units removed for good (a plain ONNX model, no mask inputs).

    --negative is a repair (the units that reliably lower the metric), --top K an ablation (the K units
    the metric relies on most), --units your own choice; the held-out metric before and after is printed."""
    from onnxshap.audit.repair import prune as do_prune
    from onnxshap.audit.repair import select_units
    from onnxshap.audit.runfolder import RunFolder

    folder = RunFolder(run_dir)
    ids = [u.strip() for u in unit_ids.split(",") if u.strip()] if unit_ids else None
    chosen = select_units(folder, top=top, negative=negative, max_units=max_units, units=ids)
    if not chosen:
        fail("no unit has a confidence interval entirely below 0; nothing removed, nothing written", code=1)
    repair = do_prune(model, run_dir, chosen, output, provider=provider, metric=metric)
    click.echo(
        f"removed {len(repair.removed)} units: {', '.join(repair.removed[:10])}"
        f"{' ...' if len(repair.removed) > 10 else ''}"
    )
    click.echo(
        f"  folded into weights: {len(repair.folded)} layers; constant multiply: "
        f"{len(repair.constant_mul)} layers"
    )
    if repair.original_value is None or repair.repaired_value is None:
        click.echo(
            f"not measured: the run's metric {repair.metric} is code named by the run folder, which prune "
            "never runs; pass --metric to measure the repair"
        )
    else:
        # by intent: --negative repairs, --top ablates what the model relies on, --units is the user's choice
        after = "repaired" if negative else (f"top {len(repair.removed)} ablated" if top else "pruned")
        click.echo(
            f"{repair.metric} on the {repair.checked_on}: original {repair.original_value:.4f} -> "
            f"{after} {repair.repaired_value:.4f} ({repair.repaired_value - repair.original_value:+.4f})"
        )
        if top and not negative:
            click.echo(
                "  an ablation, not a repair: --top removes the units the metric relies on most (the first "
                "point of the removal curve); --negative removes the units that reliably hurt it"
            )
    click.echo(f"wrote {repair.output}")
