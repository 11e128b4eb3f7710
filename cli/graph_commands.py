"""`onnxshap inspect` and `onnxshap instrument`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from onnxshap.graph import PLACEMENTS, instrument_model, load_model, units_path_for

from .errors import fail, friendly_errors

UNITS_HELP = "Unit kinds: conv (default) or conv,dense."
PLACEMENT_HELP = (
    "after-chain: mask after BN/activation (true zero, keeps fusion); after-conv: raw conv output."
)


def units_option(fn):
    return click.option("--units", default="conv", show_default=True, help=UNITS_HELP)(fn)


def exclude_option(fn):
    return click.option(
        "--exclude",
        metavar="REGEX",
        default=None,
        help="Leave out layers whose name matches this regular expression.",
    )(fn)


def placement_option(fn):
    return click.option(
        "--placement",
        type=click.Choice(PLACEMENTS),
        default="after-chain",
        show_default=True,
        help=PLACEMENT_HELP,
    )(fn)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@units_option
@placement_option
@exclude_option
@click.option("--json", "as_json", is_flag=True, help="Print the unit table as JSON.")
@friendly_errors
def inspect(model: Path, units: str, placement: str, exclude: str | None, as_json: bool) -> None:
    """List the unit layers of MODEL: name, op, channels, and where each mask goes."""
    from onnxshap.graph import sha256_of

    loaded = load_model(model)
    _, table = instrument_model(loaded, units=units, placement=placement, exclude=exclude)
    table.model_sha256 = sha256_of(loaded.path)
    if as_json:
        click.echo(json.dumps(table.to_dict(), indent=1))
        return
    width = min(60, max(len(layer.layer) for layer in table.layers))
    click.echo(f"{'layer':<{width}}  {'op':<13} {'kind':<5} {'units':>6}  mask after")
    for layer in table.layers:
        where = " -> ".join([layer.op, *layer.chain])
        graph = "" if layer.graph == "main" else f"  [in {layer.graph}]"
        click.echo(
            f"{layer.layer:<{width}}  {layer.op:<13} {layer.kind:<5} {layer.channels:>6}  {where}{graph}"
        )
    for skip in table.skipped:
        click.echo(f"skipped {skip.layer} ({skip.op}): {skip.reason}")
    click.echo(
        f"{len(table.layers)} layers, {table.n_units} units ({placement}); {len(table.skipped)} skipped"
    )


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the instrumented model; its unit table goes next to it.",
)
@units_option
@placement_option
@exclude_option
@friendly_errors
def instrument(model: Path, output: Path, units: str, placement: str, exclude: str | None) -> None:
    """Write OUTPUT (MODEL with one mask input per unit layer) and OUTPUT's .units.json."""
    from onnxshap.instrumented import instrument as do_instrument

    if output.resolve() == model.resolve():
        fail("refusing to overwrite the input model; choose another -o")
    inst = do_instrument(model, units=units, placement=placement, exclude=exclude)
    path = inst.save(output)
    click.echo(
        f"wrote {path} ({inst.units.n_units} units in {len(inst.units.layers)} layers) "
        f"and {units_path_for(path)}"
    )
