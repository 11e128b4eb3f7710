"""A folder of images with a `labels.csv`, read with Pillow and preprocessed by a `PreprocessSpec`.

`labels.csv` (UTF-8, comma-separated, blank lines skipped, cells stripped):

- with a header: the first row names the columns and contains `file`; `label` and `group` are optional,
  other columns are ignored, order is free (`file,label,group`, `label,file`, ...);
- without a header (the first row has no cell named `file`): columns are `file,label[,group]` by position.

Files are relative to the folder (subfolders allowed); absolute paths and `..` are refused, so a labels.csv
cannot read files outside its folder (symbolic links inside the folder are followed: whoever placed them chose
their target). `./a.png` and `a.png` name the same file. A file listed more than once with the same label and
group is kept as listed (one warning with the count; `Dataset.split` keeps its copies in one split); listed with
two labels or two groups, it is refused. Labels are non-negative integers. Group ids become int64 when every one
is an integer, else strings. A folder without `labels.csv` is read as unlabeled: every image file directly in
it, sorted by name.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from onnxshap.data.dataset import Dataset
from onnxshap.data.preprocess import PreprocessSpec
from onnxshap.errors import DataError

LABELS_FILE = "labels.csv"
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
_INT = re.compile(r"[+-]?[0-9]+")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelRow:
    """One image listed in labels.csv (`line` is 1-based, for messages)."""

    file: str
    label: int | None
    group: str | None
    line: int


def read_labels_csv(path: str | Path) -> list[LabelRow]:
    """Rows of a labels.csv (see the module docstring for the format)."""
    path = Path(path)
    where = path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            raw = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise DataError(f"{where} is not UTF-8 text") from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    rows = [(i + 1, [c.strip() for c in row]) for i, row in enumerate(raw) if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"{where} is empty: expected lines 'file,label' (optional third column 'group')")
    first = [c.lower() for c in rows[0][1]]
    if "file" in first:
        col_file = first.index("file")
        col_label = first.index("label") if "label" in first else None
        col_group = first.index("group") if "group" in first else None
        width = None
        rows = rows[1:]
        if not rows:
            raise DataError(f"{where} has a header but lists no images")
    else:
        width = len(rows[0][1])
        if width > 3:
            raise DataError(
                f"{where} line {rows[0][0]}: {width} columns; without a header the columns are file,label[,group]"
            )
        col_file, col_label, col_group = 0, (1 if width >= 2 else None), (2 if width >= 3 else None)
    needed = max(c for c in (col_file, col_label, col_group) if c is not None) + 1
    out = []
    for line, cells in rows:
        if len(cells) < needed or (width is not None and len(cells) != width):
            want = width or needed
            raise DataError(f"{where} line {line}: expected {want} column(s), got {len(cells)}")
        file = _inside_folder(cells[col_file], where, line)
        label = None
        if col_label is not None:
            text = cells[col_label]
            if not _INT.fullmatch(text):
                hint = " (a header row must name its columns: file,label[,group])" if line == 1 else ""
                raise DataError(f"{where} line {line}: label {text!r} of {file!r} is not an integer{hint}")
            label = int(text)
            if label < 0:
                raise DataError(f"{where} line {line}: label {label} of {file!r} is negative")
        group = None
        if col_group is not None:
            group = cells[col_group]
            if not group:
                raise DataError(f"{where} line {line}: empty group for {file!r}")
        out.append(LabelRow(file, label, group, line))
    _check_repeats(out, where)
    return out


def _inside_folder(file: str, where: str, line: int) -> str:
    """The file name of a labels.csv row, normalised (`./a.png` -> `a.png`); absolute paths and `..` refused."""
    if not file:
        raise DataError(f"{where} line {line}: empty file name")
    path = PurePosixPath(file)
    if path.is_absolute() or ".." in path.parts:
        raise DataError(
            f"{where} line {line}: {file!r} points outside the image folder (absolute or '..'); files must lie "
            "inside it (a symbolic link inside the folder may point elsewhere)"
        )
    return str(path)


def _check_repeats(rows: list[LabelRow], where: str) -> None:
    """Refuse a file listed with two labels or two groups; warn once (with a count) about repeated rows."""
    first: dict[str, LabelRow] = {}
    repeats = 0
    for row in rows:
        seen = first.setdefault(row.file, row)
        if seen is row:
            continue
        for what, a, b in (("labels", seen.label, row.label), ("groups", seen.group, row.group)):
            if a != b:
                raise DataError(
                    f"{where} lines {seen.line} and {row.line} give {row.file!r} two {what} ({a} and {b}); "
                    "a file has one"
                )
        repeats += 1
    if repeats:
        files = sum(1 for n in Counter(r.file for r in rows).values() if n > 1)
        log.warning(
            "%s: %d row(s) list again a file already listed with the same label and group (%d file(s)); kept as "
            "listed, and all copies of a file land in the same split",
            where,
            repeats,
            files,
        )


def _groups_array(values: list[str]) -> np.ndarray:
    if all(_INT.fullmatch(v) for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    return np.array(values, dtype=str)


def read_image(path: Path, spec: PreprocessSpec, name: str | None = None) -> np.ndarray:
    """One image file -> one preprocessed item; unreadable files are a DataError naming the file."""
    name = name or path.name
    try:
        with Image.open(path) as img:
            img.load()
            return spec.apply(img)
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {name!r}: not an image format Pillow knows") from None
    except DataError:
        raise
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read image {name!r}: {text}") from None


def load_image_folder(folder: str | Path, spec: PreprocessSpec, input_name: str = "x") -> Dataset:
    """Dataset from a folder of images (+ labels.csv), stacked under `input_name`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    csv_path = folder / LABELS_FILE
    if csv_path.is_file():
        rows = read_labels_csv(csv_path)
        for row in rows:
            if not (folder / row.file).is_file():
                raise DataError(f"{LABELS_FILE} line {row.line}: image {row.file!r} not found in {folder}")
        files = [row.file for row in rows]
        labels = None if rows[0].label is None else np.array([r.label for r in rows], dtype=np.int64)
        groups = None if rows[0].group is None else _groups_array([r.group or "" for r in rows])
    else:
        files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder} is empty: no {LABELS_FILE} and no image files")
        labels = groups = None
    items = [read_image(folder / f, spec, f) for f in files]
    return Dataset(
        inputs={input_name: np.stack(items)},
        labels=labels,
        groups=groups,
        names=files,
        source=str(folder),
        spec=spec,
    )
