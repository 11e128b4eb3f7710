"""`onnxshap report RUN_DIR`: write RUN_DIR/report.html (+ PNG figures) and print its path."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import friendly_errors


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--no-pictures",
    is_flag=True,
    help="Skip the per-unit activation pictures (they re-open the model and the data).",
)
@friendly_errors
def report(run_dir: Path, no_pictures: bool) -> None:
    """Write RUN_DIR/report.html and RUN_DIR/figures/*.png from a finished run; print the HTML's path.

    Opens nothing. The page holds the run summary, the removal curves of every ranking with their AUC, the
    top and most negative units, their spread over layers, Shapley modes for vector games and, for conv
    models, each top unit's activation maps.
    """
    import contextlib

    from onnxshap.audit.runfolder import RunFolder
    from onnxshap.report import build_report

    # report.html and figures/ have one writer at a time too (a missing folder: the report's own error)
    lock = RunFolder(run_dir).locked() if run_dir.is_dir() else contextlib.nullcontext()
    with lock:
        click.echo(str(build_report(run_dir, pictures=not no_pictures)))
