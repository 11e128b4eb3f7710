"""Every title, count and claim of the report matches the run (issue 16): top k as asked, no best ranking
without competitors, the decision per unit first, intervals clipped to the game's range."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from onnxshap.report import build_report
from onnxshap_cli.main import cli

REPO = Path(__file__).resolve().parents[2]
CNN = REPO / "models" / "digits_cnn_torch.onnx"
DATA = REPO / "models" / "digits_test.npz"


def test_budget_stopped_run_reports_what_it_knows(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        ["run", str(CNN), "--data", str(DATA), "--top-k", "10", "--max-evals", "600", "--no-baselines",
         "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "undecided" in res.output and "more evaluations would settle it" in res.output
    html = build_report(out, pictures=False).read_text()
    assert "The top 10 units" in html and "Top 30" not in html
    assert "Best ranking" not in html  # shapley had no competitor: nothing to announce
    assert re.search(r"<b>\d+ of the top 10 are certain</b>", html)
    assert "<th>decision</th>" in html and "undecided</td>" in html
    assert "settling the rest would take roughly" in html and "heuristic" in html
    intervals = [tuple(map(float, m)) for m in re.findall(r"\[(-?[\d.e+-]+), (-?[\d.e+-]+)\]</td>", html)]
    assert intervals and all(-1 <= lo <= hi <= 1 for lo, hi in intervals)  # accuracy: |value| <= 1
