"""Rendered text lines (models/textlines.py): determinism, balance, preprocessing, and PP-OCR cls accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from models.textlines import (
    HEIGHT,
    WIDTH,
    folder_spec,
    font_path,
    make_dataset,
    preprocess,
    render_lines,
    write_folder,
    write_npz,
)
from onnxshap.data import Dataset, load_image_folder, load_npz


def test_fonts_are_found():
    assert font_path().is_file()


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_dataset(16, seed=3), make_dataset(16, seed=3)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.labels, b.labels)
    c = make_dataset(16, seed=4)
    assert not np.array_equal(a.x, c.x)


@pytest.mark.parametrize("n", [1, 7, 32])
def test_shapes_dtypes_and_balanced_labels(n):
    data = make_dataset(n, seed=0)
    assert isinstance(data, Dataset)
    assert data.input_names == ["x"]
    assert data.x.shape == (n, 3, HEIGHT, WIDTH) and data.x.dtype == np.float32
    assert data.labels is not None and data.labels.dtype == np.int64
    assert int(data.labels.sum()) == n // 2 and set(np.unique(data.labels)) <= {0, 1}
    assert data.x.min() >= -1.0 and data.x.max() <= 1.0


def test_lines_are_dark_text_on_light_tight_crops():
    for line in render_lines(8, seed=1):
        pixels = np.asarray(line.image)
        assert line.image.mode == "L" and np.median(pixels) >= 150 and pixels.min() <= 120
        assert 20 <= line.font_size <= 40 and line.text.strip()
        assert line.image.height < 2 * line.font_size  # the font's line box plus a few pixels


def test_preprocess_matches_rapidocr_resize_norm_pad():
    # A 20 x 50 image: width ceil(48 * 50 / 20) = 120, right side zero-padded; white -> 1, black -> -1.
    img = Image.new("L", (50, 20), 255)
    img.paste(0, (0, 0, 10, 20))
    out = preprocess(img)
    assert out.shape == (3, HEIGHT, WIDTH) and out.dtype == np.float32
    resized_w = math.ceil(HEIGHT * 50 / 20)
    assert np.all(out[:, :, resized_w:] == 0.0)
    assert np.allclose(out[:, :, 0], -1.0) and np.allclose(out[:, :, resized_w - 1], 1.0)
    # Wide lines are squeezed to the full width, with no padding.
    wide = preprocess(Image.new("L", (1000, 20), 255))
    assert np.allclose(wide, 1.0)


def test_npz_and_folder_round_trip(tmp_path):
    npz = load_npz(write_npz(tmp_path / "lines.npz", n=6, seed=2))
    ref = make_dataset(6, seed=2)
    assert np.array_equal(npz.x, ref.x) and np.array_equal(npz.labels, ref.labels)
    folder = write_folder(tmp_path / "lines", n=6, seed=2)
    loaded = load_image_folder(folder, folder_spec())
    assert loaded.x.shape == ref.x.shape and np.array_equal(loaded.labels, ref.labels)
    assert (folder / "preprocess.json").is_file()


@pytest.mark.thirdparty
def test_ppocr_cls_reads_the_rendered_lines():
    ort = pytest.importorskip("onnxruntime")
    from models.thirdparty import FetchError, fetch

    try:
        path = fetch("ppocr_cls")
    except FetchError as exc:
        pytest.skip(f"cannot fetch ppocr_cls: {exc}")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = make_dataset(64, seed=0)
    probs = session.run(None, {"x": data.x})[0]
    assert probs.shape == (64, 2)
    accuracy = float((probs.argmax(axis=1) == data.labels).mean())
    assert accuracy >= 0.8, accuracy
