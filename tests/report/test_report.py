"""`build_report` / `onnxshap report` on real run folders of the digits CNN."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxshap.report import ReportError, build_report
from onnxshap.report.pictures import locate
from onnxshap.report.rundata import load_run
from onnxshap_cli.report_command import report
from tests.report.helpers import MODELS, copy_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CORE_FIGURES = {"removal_curves.png", "top_units.png", "layer_distribution.png", "value_histogram.png"}


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def image_sources(html: str) -> list[str]:
    parser = _Images()
    parser.feed(html)
    return parser.sources


@pytest.fixture(scope="module")
def scalar_report(scalar_run: Path) -> Path:
    return build_report(scalar_run)


@pytest.fixture(scope="module")
def vector_report(vector_run: Path) -> Path:
    return build_report(vector_run)


def test_report_and_figures_written(scalar_report: Path, scalar_run: Path) -> None:
    assert scalar_report == scalar_run / "report.html"
    figures = {p.name: p for p in (scalar_run / "figures").glob("*.png")}
    assert set(figures) >= CORE_FIGURES
    units = sorted(n for n in figures if n.startswith("unit_"))
    assert units == [f"unit_{i:02d}.png" for i in range(1, 9)]  # the top 8 units are all conv filters
    for path in figures.values():
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 2000
    assert "modes_heatmap.png" not in figures  # scalar game


def test_every_image_is_a_written_figure(scalar_report: Path, scalar_run: Path) -> None:
    sources = image_sources(scalar_report.read_text())
    assert all(s.startswith("figures/") for s in sources)
    assert sorted(sources) == sorted(f"figures/{p.name}" for p in (scalar_run / "figures").glob("*.png"))


def test_html_gives_every_auc_the_best_ranking_and_top_units(scalar_report: Path, scalar_run: Path) -> None:
    html = scalar_report.read_text()
    info = json.loads((scalar_run / "run.json").read_text())
    auc = info["curves"]
    assert set(auc) == {"shapley", "negative", "loo", "activation", "weight", "random"}
    for name, value in auc.items():
        assert re.search(rf"<td>{name}</td><td>[^<]*</td><td class=num>{value:.4g}</td>", html), name
    best = min((n for n in auc if n != "negative"), key=auc.get)
    assert f"Best ranking: <b>{best}</b>" in html
    assert len(info["top_k"]) == 10
    for unit in info["top_k"]:
        assert f"<td>{unit}</td>" in html
    for key in ("v(all) held out", "Evaluations", "Converged", "onnxshap version", info["model_sha256"][:12]):
        assert key in html
    assert "data-images" not in html.split("<script>")[0]  # set by the inline script, not hard-coded


def test_negative_units_section(scalar_report: Path, scalar_run: Path) -> None:
    html = scalar_report.read_text()
    data = load_run(scalar_run)
    negative = data.negative_rows()
    assert "Most negative units" in html
    if negative:
        assert (scalar_run / "figures" / "negative_units.png").is_file()
        assert f"<td>{negative[0].unit}</td>" in html
    candidates = data.repair_candidates()
    assert all(row.ci_high < 0 for row in candidates)
    assert (f"<b>{len(candidates)}</b> unit(s)" in html) == bool(candidates)


def test_repair_candidates_are_what_prune_negative_removes(vector_run: Path, tmp_path: Path) -> None:
    """The report's repair candidates and `prune --negative` follow one rule: for a vector game every
    element's interval lies below zero, not only the mean of the element intervals the table shows."""
    from onnxshap.audit.repair import select_units
    from onnxshap.audit.runfolder import RunFolder

    folder = RunFolder(copy_run(vector_run, tmp_path / "run"))
    result = folder.load_result()
    high = result.ci_high.copy()
    high[:3] = -1.0  # players 0-2: every element below zero
    high[3] = -1.0
    high[3, 0] = 5.0  # player 3: the mean below zero, one element above
    result.ci_high = high
    folder.write_results(result, folder.load_units(), folder.load_players())
    data = load_run(folder.path)
    assert data.rows[[r.index for r in data.rows].index(3)].ci_high < 0
    candidates = sorted(r.unit_index for r in data.repair_candidates())
    assert {0, 1, 2} <= set(candidates) and 3 not in candidates
    assert candidates == sorted(select_units(folder, negative=True))


def test_vector_game_gets_the_heatmap(vector_report: Path, vector_run: Path) -> None:
    assert np.load(vector_run / "modes.npy").shape == (80, 10)
    heatmap = vector_run / "figures" / "modes_heatmap.png"
    assert heatmap.read_bytes()[:8] == PNG_MAGIC
    html = vector_report.read_text()
    assert 'src="figures/modes_heatmap.png"' in html and "Shapley modes" in html
    assert "mean " in html and "over 10 elements" in html  # vector v(all) summarised


def test_missing_data_still_builds_with_a_note(scalar_run: Path, tmp_path: Path) -> None:
    run = copy_run(scalar_run, tmp_path / "run", data=str(tmp_path / "gone.npz"))
    html = build_report(run).read_text()
    assert "activation pictures are missing: the data" in html and "gone.npz" in html
    assert not list((run / "figures").glob("unit_*.png"))
    assert (run / "figures" / "removal_curves.png").is_file()


def test_pictures_of_a_custom_metric_run_never_import_the_metric(scalar_run: Path, tmp_path: Path) -> None:
    """The pictures reopen the run's model and data (never its metric): a custom metric named in run.json
    is not imported, and the pictures are drawn all the same."""
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef fn(o, y, g):\n    return o.mean((1, 2))\n")
    info = json.loads((scalar_run / "run.json").read_text())
    metric = f"custom:{evil}:fn"
    run = copy_run(scalar_run, tmp_path / "run", metric=metric, config={**info["config"], "metric": metric})
    build_report(run)
    assert not marker.exists()
    assert len(list((run / "figures").glob("unit_*.png"))) == 8


def test_missing_or_changed_model_still_builds(scalar_run: Path, tmp_path: Path) -> None:
    gone = copy_run(scalar_run, tmp_path / "gone", model=str(tmp_path / "nowhere" / "model.onnx"))
    assert "cannot be found any more" in build_report(gone).read_text()
    changed = copy_run(scalar_run, tmp_path / "changed", model_sha256="0" * 64)
    assert "has changed since the run" in build_report(changed).read_text()


def test_relative_paths_are_found_from_the_runs_working_directory(scalar_run: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "m.onnx").write_bytes((MODELS / "digits_cnn_torch.onnx").read_bytes())
    run = copy_run(scalar_run, project / "runs" / "a", model="models/m.onnx")
    info = json.loads((run / "run.json").read_text())
    info["config"]["out"] = "runs/a"
    (run / "run.json").write_text(json.dumps(info))
    assert locate("models/m.onnx", load_run(run)) == project / "models" / "m.onnx"


def test_rebuilding_replaces_the_figures(scalar_run: Path, tmp_path: Path) -> None:
    run = copy_run(scalar_run, tmp_path / "run")
    (run / "figures").mkdir()
    (run / "figures" / "unit_99.png").write_bytes(b"stale")
    build_report(run, pictures=False)
    names = {p.name for p in (run / "figures").glob("*.png")}
    assert names >= CORE_FIGURES and not any(n.startswith("unit_") for n in names)


def test_bad_run_dir_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    cases = {
        tmp_path / "missing": "run folder not found",
        tmp_path: "is not a run folder (no run.json)",
        tmp_path / "file.txt": "is not a folder",
    }
    for path, message in cases.items():
        with pytest.raises(ReportError, match=re.escape(message)):
            build_report(path)
    (tmp_path / "run.json").write_text(json.dumps({"status": "finished"}))
    with pytest.raises(ReportError, match=re.escape("incomplete: shapley.csv is missing")):
        build_report(tmp_path)


def test_unfinished_run_is_refused(scalar_run: Path, tmp_path: Path) -> None:
    run = copy_run(scalar_run, tmp_path / "run", status="running")
    with pytest.raises(ReportError, match="unfinished run"):
        build_report(run)
    result = CliRunner().invoke(report, [str(run)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "unfinished run" in result.output


def test_cli_prints_only_the_path(scalar_run: Path, tmp_path: Path) -> None:
    run = copy_run(scalar_run, tmp_path / "run")
    code = "from onnxshap_cli.report_command import report; report()"
    done = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{run / 'report.html'}\n"
    missing = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope")], capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"onnxshap: error: run folder not found: {tmp_path / 'nope'}"


def test_unbounded_intervals_do_not_break_the_figures(scalar_run: Path, tmp_path: Path) -> None:
    run = copy_run(scalar_run, tmp_path / "run")
    lines = (run / "shapley.csv").read_text().splitlines()
    for i in (1, 2, len(lines) - 1):  # the top two and the most negative unit: samples too few for a bound
        cells = lines[i].split(",")
        cells[4:6] = ["-inf", "inf"]
        lines[i] = ",".join(cells)
    (run / "shapley.csv").write_text("\n".join(lines) + "\n")
    html = build_report(run, pictures=False).read_text()
    assert "[-1, 1]" in html and "inf]" not in html  # clipped to what an accuracy game allows (R = 1)
    assert (run / "figures" / "top_units.png").stat().st_size > 2000
