"""`onnxshap interactions RUN_DIR`: pairwise interactions among the top players of a finished run."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import friendly_errors


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", type=int, default=10, show_default=True, help="Top M players of the run (2..30).")
@click.option(
    "--method",
    type=click.Choice(["sampled", "exact"]),
    default="sampled",
    show_default=True,
    help="sampled: random permutations with intervals; exact: every coalition (at most 20 players).",
)
@click.option("--permutations", type=int, default=100, show_default=True, help="sampled: permutations.")
@click.option("--images", type=int, default=None, help="Items per permutation (default: the run's --images).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--delta", type=float, default=0.05, show_default=True, help="All intervals hold w.p. 1-delta.")
@click.option(
    "--metric", default=None, help="Needed only when the run's metric is custom: code (named again)."
)
@click.option("--provider", default="cpu", show_default=True, help="auto | cpu | cuda")
@friendly_errors
def interactions(
    run_dir: Path, top: int, method: str, permutations: int, images, seed, delta, metric, provider
):
    """Write RUN_DIR/interactions.csv: the Shapley interaction index (msapy's network_interaction_2d) of
    every pair among the run's top players, with intervals."""
    from onnxshap.audit.interactions import run_interactions

    path, result, names = run_interactions(
        run_dir, top, method, permutations, images, seed, delta, metric, provider
    )
    order = sorted(range(len(result.pairs)), key=lambda k: -abs(result.values[k]))
    click.echo(f"{len(result.pairs)} pairs of the top {len(names)} players, {result.evaluations} evaluations")
    click.echo(f"intervals: {result.metadata['guarantee']}")
    for k in order[:10]:
        a, b = result.pairs[k]
        click.echo(
            f"  {names[a]:<28} x {names[b]:<28} {result.values[k]:+.4f} "
            f"[{result.ci_low[k]:+.4f}, {result.ci_high[k]:+.4f}]"
        )
    click.echo(f"wrote {path}")
