"""The report opened in headless Chromium: every <img> loads (Debian's chromium package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxshap.report import build_report


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("chromium is not installed (apt-get install -y chromium) - the browser check did not run")


def _chromium_args(browser: str, profile: Path) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]


def test_report_images_load_in_headless_chromium(vector_run: Path, tmp_path: Path) -> None:
    browser = chromium()
    page = build_report(vector_run)
    figures = list((vector_run / "figures").glob("*.png"))
    assert len(figures) >= 6
    args = [*_chromium_args(browser, tmp_path / "profile"), "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body, done.stdout[:500]
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(0))
    total = re.search(r'data-images-total="(\d+)"', body.group(0))
    assert loaded and total, body.group(0)
    assert int(loaded.group(1)) == int(total.group(1)) >= len(figures)
    assert "Removal curves" in done.stdout


def _rendered(run: Path, tmp_path: Path) -> tuple[str, Image.Image]:
    """The report of ``run`` as headless Chromium renders it: its DOM after scripts, and a screenshot."""
    browser = chromium()
    page = build_report(run).resolve().as_uri()
    shot = tmp_path / "page.png"
    base = _chromium_args(browser, tmp_path / "profile")
    dom = subprocess.run([*base, "--dump-dom", page], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    done = subprocess.run(
        [*base, "--window-size=1280,2400", f"--screenshot={shot}", page], capture_output=True, timeout=180
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    return dom.stdout, Image.open(shot).convert("L")


def _interval_cells(dom: str) -> list[tuple[float, float]]:
    return [tuple(map(float, m)) for m in re.findall(r"\[(-?[\d.e+-]+), (-?[\d.e+-]+)\]</td>", dom)]


def _assert_painted(image: Image.Image) -> None:
    """The page was painted: a large screenshot that is not one flat colour."""
    pixels = np.asarray(image, dtype=np.float64)
    assert image.size == (1280, 2400) and pixels.std() > 10 and (pixels < 128).mean() > 0.005


@pytest.mark.slow
def test_demo_report_in_chromium_leads_with_the_decision(demo_run: Path, tmp_path: Path) -> None:
    dom, shot = _rendered(demo_run, tmp_path)
    _assert_painted(shot)
    run = json.loads((demo_run / "run.json").read_text())
    k = len(run["top_k"])
    assert f"The top {k} units" in dom and re.search(rf"<b>\d+ of the top {k} are certain</b>", dom)
    assert "<th>decision</th>" in dom
    decisions = re.findall(r"<td>(certainly in the top k|certainly out|undecided)</td>", dom)
    assert len(decisions) >= k
    assert "Best ranking" in dom  # the demo ran the baselines: a ranking won among several
    assert all(-1 <= lo <= hi <= 1 for lo, hi in _interval_cells(dom))  # accuracy: |value| <= 1


@pytest.mark.slow
def test_budget_stopped_report_in_chromium_says_what_is_unknown(budget_run: Path, tmp_path: Path) -> None:
    dom, shot = _rendered(budget_run, tmp_path)
    _assert_painted(shot)
    assert "The top 10 units" in dom and "Top 30" not in dom
    assert "undecided</td>" in dom and "settling the rest would take roughly" in dom
    assert "Best ranking" not in dom  # no baselines ran: no competitor, nothing to announce
    cells = _interval_cells(dom)
    assert cells and all(-1 <= lo <= hi <= 1 for lo, hi in cells)  # clipped to the game's range
    assert any(hi - lo > 0.2 for lo, hi in cells)  # and wide: the budget settled little
