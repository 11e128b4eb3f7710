"""Image folders: labels.csv cannot read outside its folder; repeated rows warn (with a count) and stay in one
split; a file listed with two labels or groups is refused."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxshap.data import Dataset, PreprocessSpec, load_image_folder
from onnxshap.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
SPEC = PreprocessSpec(size=(8, 8), channels="gray", scale=1 / 255, layout="NCHW")


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8), "L").save(path)


def _folder(tmp_path: Path, csv_text: str, names=("a.png", "b.png", "c.png", "sub/d.png")) -> Path:
    folder = tmp_path / "imgs"
    for i, name in enumerate(names):
        _png(folder / name, 40 * i)
    (folder / "labels.csv").write_text(csv_text)
    return folder


@pytest.mark.parametrize(
    ("row", "shown"),
    [("../secret.png", "'../secret.png'"), ("sub/../../secret.png", "'sub/../../secret.png'"), ("ABS", None)],
)
def test_paths_outside_the_folder_are_refused(tmp_path, row, shown):
    _png(tmp_path / "secret.png", 255)  # exists: only the rule stops it
    if row == "ABS":
        row = str(tmp_path / "secret.png")
        shown = repr(row)
    folder = _folder(tmp_path, f"file,label\na.png,0\n{row},1\n")
    message = f"labels.csv line 3: {shown} points outside the image folder (absolute or '..')"
    with pytest.raises(DataError, match=re.escape(message)):
        load_image_folder(folder, SPEC)


def test_dot_paths_and_symlinks_inside_are_read(tmp_path):
    folder = _folder(tmp_path, "file,label\n./a.png,0\nsub//d.png,1\nlink.png,2\n")
    (folder / "link.png").symlink_to(folder / "b.png")
    d = load_image_folder(folder, SPEC)
    assert d.names == ["a.png", "sub/d.png", "link.png"] and list(d.labels) == [0, 1, 2]


def test_conflicting_labels_or_groups_are_refused(tmp_path):
    folder = _folder(tmp_path, "file,label\na.png,0\nb.png,1\n./a.png,2\n")
    message = "labels.csv lines 2 and 4 give 'a.png' two labels (0 and 2); a file has one"
    with pytest.raises(DataError, match=re.escape(message)):
        load_image_folder(folder, SPEC)
    (folder / "labels.csv").write_text("a.png,0,x\nb.png,1,x\na.png,0,y\n")
    with pytest.raises(DataError, match=re.escape("lines 1 and 3 give 'a.png' two groups (x and y)")):
        load_image_folder(folder, SPEC)


def test_repeated_rows_warn_once_and_stay_in_one_split(tmp_path, caplog):
    rows = ["a.png,0", "b.png,0", "c.png,1", "sub/d.png,1", "a.png,0", "./a.png,0", "c.png,1"]
    folder = _folder(tmp_path, "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        d = load_image_folder(folder, SPEC)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "labels.csv: 3 row(s) list again a file already listed" in warnings[0]
    assert "(2 file(s))" in warnings[0] and len(d) == 7
    for seed in range(40):
        valuation, held = d.split(0.5, seed=seed)
        assert not set(valuation.names) & set(held.names), seed
        assert len(set(held.names)) == 2 and len(valuation) + len(held) == 7  # half of the 4 distinct files
    # Names without repeats split exactly as items without names (the same seeded draw).
    x = np.arange(40, dtype=np.float32)[:, None]
    labels = np.arange(40) % 3
    named = Dataset({"x": x}, labels=labels, names=[f"{i}.png" for i in range(40)])
    plain = Dataset({"x": x}, labels=labels)
    for seed in range(5):
        np.testing.assert_array_equal(named.split(0.3, seed=seed)[1].x, plain.split(0.3, seed=seed)[1].x)


def test_cli_refuses_outside_paths_and_warns_about_repeats(tmp_path):
    with np.load(ROOT / "models" / "digits_test.npz") as npz:
        x, y = npz["x"][:40], npz["y"][:40]
    folder = tmp_path / "digits"
    folder.mkdir()
    lines = ["file,label"]
    for i, (item, label) in enumerate(zip(x, y, strict=True)):
        Image.fromarray(np.rint(item[0] * 255).astype(np.uint8), "L").save(folder / f"{i:02d}.png")
        lines.append(f"{i:02d}.png,{label}")
    lines += [lines[1], lines[2]]  # two repeated rows
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "onnxshap_cli.main", "run", str(ROOT / "models" / "digits_cnn_torch.onnx")]
    quick = ["--max-evals", "50", "--no-baselines", "--no-progress", "--estimator", "truncated"]
    ok = subprocess.run(
        [*cmd, "--data", str(folder), "--out", str(tmp_path / "r1"), *quick], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.count("row(s) list again a file") == 1 and "labels.csv: 2 row(s)" in ok.stderr
    (folder / "labels.csv").write_text("\n".join([*lines[:-2], "../secret.png,1"]) + "\n")
    bad = subprocess.run(
        [*cmd, "--data", str(folder), "--out", str(tmp_path / "r2"), *quick], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "labels.csv line 42: '../secret.png' points outside the image folder" in bad.stderr
