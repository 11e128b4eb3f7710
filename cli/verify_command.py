"""`onnxshap verify`: does instrumenting this model keep its outputs?"""

from __future__ import annotations

from pathlib import Path

import click

from .errors import fail, friendly_errors
from .graph_commands import exclude_option, placement_option, units_option


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help=".npz with 'x' (or one array per input name); random inputs when omitted.",
)
@click.option(
    "--batch", default=4, show_default=True, help="Items to compare (random inputs or the first N)."
)
@click.option("--provider", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--tolerance", default=1e-5, show_default=True, help="Max diff relative to the output scale.")
@units_option
@placement_option
@exclude_option
@friendly_errors
def verify(
    model: Path,
    data: Path | None,
    batch: int,
    provider: str,
    tolerance: float,
    units: str,
    placement: str,
    exclude: str | None,
) -> None:
    """Check that MODEL instrumented with all masks at 1 gives the original outputs (exit 1 if not; exit 2 when
    the original's outputs hold NaN or inf on the data, as nothing can then be compared)."""
    from onnxshap.instrumented import instrument
    from onnxshap.runtime.verify import check_invariant, random_inputs

    inst = instrument(
        model, units=units, placement=placement, provider=provider, optimize=False, exclude=exclude
    )
    masks = inst.mask_inputs()
    if data is not None:
        from onnxshap.data import load_data

        dataset = load_data(data, input_metas=inst.input_metas())
        feeds = {k: v[:batch] for k, v in dataset.inputs.items()}
        source = f"{data.name} (first {batch} items)"
    else:
        feeds = random_inputs(inst.evaluator.session, batch=batch, skip=masks)
        source = "random inputs (give real ones with --data)"
    report = check_invariant(inst, feeds, source)  # NaN/inf from the original: exit 2 (nothing to compare)
    click.echo(
        f"{inst.n_units} units in {len(inst.units.layers)} layers on {inst.provider}; "
        f"max |diff| {report.max_abs_diff:.3g} ({report.relative_diff:.3g} of output scale); "
        f"removing all units {'changes' if report.changed_when_removed else 'does NOT change'} the output"
    )
    if not report.passes(tolerance):
        fail("instrumented model does not reproduce the original", code=1)
