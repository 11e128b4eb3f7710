"""The `onnxshap` command: a thin layer over the Python API."""

from __future__ import annotations

import click

from onnxshap import __version__

from .check_command import check
from .graph_commands import inspect, instrument
from .interactions_command import interactions
from .prune_command import prune
from .report_command import report
from .run_command import run
from .verify_command import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxshap")
def cli() -> None:
    """Neuron Shapley for any exported ONNX model."""


cli.add_command(inspect)
cli.add_command(instrument)
cli.add_command(verify)
cli.add_command(run)
cli.add_command(report)
cli.add_command(prune)
cli.add_command(check)
cli.add_command(interactions)


if __name__ == "__main__":
    cli()
