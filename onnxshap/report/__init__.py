"""`build_report(run_dir)`: RUN_DIR/report.html plus PNG figures under RUN_DIR/figures/, from a finished run."""

from __future__ import annotations

import os
from pathlib import Path

from onnxshap.report.rundata import ReportError, RunData, load_run

__all__ = ["ReportError", "RunData", "build_report", "load_run"]

FIGURES_DIR = "figures"
REPORT_FILE = "report.html"


def build_report(run_dir: str | os.PathLike, pictures: bool = True) -> Path:
    """Write RUN_DIR/report.html and RUN_DIR/figures/*.png; return the HTML path. Opens nothing.

    `pictures=False` skips the per-unit activation pictures (they re-open the model and the data).
    Raises ReportError when RUN_DIR is missing, not a run folder, or holds an unfinished run.
    """
    from onnxshap.fileio import atomic_write_bytes
    from onnxshap.report import figures as F
    from onnxshap.report.html import render
    from onnxshap.report.pictures import Pictures, unit_pictures

    data = load_run(run_dir)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError(
            "onnxshap report draws its figures with matplotlib: pip install matplotlib"
        ) from None
    fig_dir = data.path / FIGURES_DIR
    fig_dir.mkdir(exist_ok=True)
    for old in fig_dir.glob("*.png"):  # figures of an earlier build (e.g. more unit pictures)
        old.unlink()
    figs: dict[str, Path | None] = {
        "removal_curves": F.removal_curves(data, fig_dir / "removal_curves.png"),
        "top_units": F.top_units(data, fig_dir / "top_units.png"),
        "negative_units": F.negative_units(data, fig_dir / "negative_units.png"),
        "layer_distribution": F.layer_distribution(data, fig_dir / "layer_distribution.png"),
        "value_histogram": F.value_histogram(data, fig_dir / "value_histogram.png"),
        "modes_heatmap": F.modes_heatmap(data, fig_dir / "modes_heatmap.png") if data.vector else None,
        "mode_images": F.mode_images(data, fig_dir / "mode_images.png") if data.vector else None,
        "interactions": F.interactions_heatmap(data.interactions or [], fig_dir / "interactions.png"),
    }
    drawn = (
        unit_pictures(data, fig_dir) if pictures else Pictures(note="activation pictures were not asked for")
    )
    page = render(data, figs, drawn).encode("utf-8")
    out = data.path / REPORT_FILE
    atomic_write_bytes(out, lambda fh: fh.write(page))
    return out
