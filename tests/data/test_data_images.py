"""Image folders with labels.csv: arrays equal a numpy computation, csv variants, bad data, the digits round trip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxshap.data import PreprocessSpec, load_image_folder, read_labels_csv
from onnxshap.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(1)
PIXELS = {f"im{i}.png": RNG.integers(0, 256, (6, 4, 3), dtype=np.uint8) for i in range(4)}


def write_folder(folder: Path, csv_text: str | None, images: dict[str, np.ndarray] = PIXELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / name)
    if csv_text is not None:
        (folder / "labels.csv").write_text(csv_text)
    return folder


CSV = "file,label,group\nim0.png,1,f\nim1.png,0,m\nim2.png,2,f\nim3.png,1,m\n"


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("channels", ["RGB", "BGR"])
def test_folder_matches_numpy(tmp_path, layout, channels):
    folder = write_folder(tmp_path / "imgs", CSV)
    spec = PreprocessSpec(
        size=(12, 12),
        resize="pad",
        scale=1 / 255,
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.3, 0.4),
        channels=channels,
        layout=layout,
        pad_value=0,
        interpolation="nearest",
    )
    d = load_image_folder(folder, spec, input_name="input")
    assert d.names == [f"im{i}.png" for i in range(4)] and d.spec == spec
    assert d.labels is not None and list(d.labels) == [1, 0, 2, 1]
    assert d.groups is not None and list(d.groups) == ["f", "m", "f", "m"]
    x = d.inputs["input"]
    assert x.dtype == np.float32 and x.shape == (4, *spec.item_shape)
    for i, name in enumerate(d.names):
        raw = np.zeros((12, 12, 3))  # 6x4 image: scale min(12/4, 12/6) = 2 -> 12x8, left (12-8)//2 = 2
        raw[:, 2:10] = np.repeat(np.repeat(PIXELS[name], 2, axis=0), 2, axis=1)
        if channels == "BGR":
            raw = raw[..., ::-1]
        want = (raw / 255 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.3, 0.4])
        if layout == "NCHW":
            want = want.transpose(2, 0, 1)
        np.testing.assert_allclose(x[i], want, rtol=1e-6, atol=1e-6)


def test_gray_stretch_nhw(tmp_path):
    images = {"a.png": np.arange(12, dtype=np.uint8).reshape(3, 4) * 20}
    folder = write_folder(tmp_path / "g", "a.png,3\n", images)
    spec = PreprocessSpec(size=(6, 8), channels="gray", layout="NHW", scale=1, interpolation="nearest")
    d = load_image_folder(folder, spec)
    np.testing.assert_array_equal(d.x[0], np.repeat(np.repeat(images["a.png"], 2, 0), 2, 1))
    assert list(d.labels) == [3] and d.groups is None


def test_csv_variants(tmp_path):
    folder = write_folder(tmp_path / "v", None, {"sub/a.png": PIXELS["im0.png"], "b.png": PIXELS["im1.png"]})
    csv = folder / "labels.csv"
    csv.write_text("\ufeffLabel,Notes,File\n 2 , hi , sub/a.png\n\n0,,b.png\n")  # BOM, spaces, any order
    rows = read_labels_csv(csv)
    assert [(r.file, r.label, r.group, r.line) for r in rows] == [
        ("sub/a.png", 2, None, 2),
        ("b.png", 0, None, 4),
    ]
    csv.write_text("sub/a.png,2,7\nb.png,0,3\n")  # no header; int groups
    d = load_image_folder(folder, PreprocessSpec(size=(6, 4)))
    assert list(d.labels) == [2, 0] and d.groups is not None and d.groups.dtype == np.int64
    csv.write_text("file\nb.png\n")  # header with files only: unlabeled
    assert load_image_folder(folder, PreprocessSpec(size=(6, 4))).labels is None


def test_folder_without_csv_is_unlabeled(tmp_path):
    folder = write_folder(tmp_path / "u", None)
    (folder / "notes.txt").write_text("not an image")
    d = load_image_folder(folder, PreprocessSpec(size=(6, 4)))
    assert d.names == sorted(PIXELS) and d.labels is None


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("", "labels.csv is empty: expected lines 'file,label'"),
        ("\n \n", "labels.csv is empty"),
        ("file,label\n", "labels.csv has a header but lists no images"),
        ("im0.png,1\nim1.png,one\n", "labels.csv line 2: label 'one' of 'im1.png' is not an integer"),
        (
            "name,class\nim0.png,1\n",
            "labels.csv line 1: label 'class' of 'name' is not an integer (a header row",
        ),
        ("im0.png,1.0\n", "labels.csv line 1: label '1.0' of 'im0.png' is not an integer"),
        ("im0.png,-1\n", "labels.csv line 1: label -1 of 'im0.png' is negative"),
        ("file,label\nim0.png,1\nim1.png\n", "labels.csv line 3: expected 2 column(s), got 1"),
        ("im0.png,1\nim1.png,1,extra\n", "labels.csv line 2: expected 2 column(s), got 3"),
        (
            "im0.png,1,g,x\n",
            "labels.csv line 1: 4 columns; without a header the columns are file,label[,group]",
        ),
        ("file,label\n,1\n", "labels.csv line 2: empty file name"),
        ("file,label,group\nim0.png,1,\n", "labels.csv line 2: empty group for 'im0.png'"),
        ("file,label\nim0.png,1\nmissing.png,2\n", "labels.csv line 3: image 'missing.png' not found in"),
    ],
)
def test_bad_csv(tmp_path, csv_text, message):
    folder = write_folder(tmp_path / "bad", csv_text)
    with pytest.raises(DataError, match=re.escape(message)):
        load_image_folder(folder, PreprocessSpec(size=(6, 4)))


def test_bad_images_and_folders(tmp_path):
    folder = write_folder(tmp_path / "bad", "file,label\nim0.png,0\nbroken.png,1\n")
    (folder / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(
        DataError, match=re.escape("cannot read image 'broken.png': not an image format Pillow")
    ):
        load_image_folder(folder, PreprocessSpec(size=(6, 4)))
    data = (folder / "im0.png").read_bytes()
    (folder / "broken.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    with pytest.raises(DataError, match=r"cannot read image 'broken\.png': "):
        load_image_folder(folder, PreprocessSpec(size=(6, 4)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"is empty: no labels\.csv and no image files"):
        load_image_folder(empty, PreprocessSpec(size=(6, 4)))
    with pytest.raises(DataError, match="image folder not found"):
        load_image_folder(tmp_path / "nope", PreprocessSpec(size=(6, 4)))


def test_check_labels_against_classes(tmp_path):
    folder = write_folder(tmp_path / "k", "file,label\nim0.png,1\nim1.png,12\nim2.png,3\n")
    d = load_image_folder(folder, PreprocessSpec(size=(6, 4)))
    d.check_labels(13)
    with pytest.raises(DataError, match=r"label 12 of 'im1\.png' is not a class of the model \(0\.\.9\)"):
        d.check_labels(10)


def test_digits_as_png_folder_equals_npz(tmp_path):
    """The shipped digits test split written as 8x8 gray PNGs reads back as the npz arrays (within 1/255)."""
    npz = np.load(ROOT / "models" / "digits_test.npz")
    x, y = npz["x"], npz["y"]
    folder = tmp_path / "digits"
    folder.mkdir()
    lines = ["file,label"]
    for i, (item, label) in enumerate(zip(x, y, strict=True)):
        name = f"{i:03d}.png"
        Image.fromarray(np.rint(item[0] * 255).astype(np.uint8), "L").save(folder / name)
        lines.append(f"{name},{label}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    spec = PreprocessSpec(size=(8, 8), channels="gray", scale=1 / 255, layout="NCHW")
    d = load_image_folder(folder, spec, input_name="input")
    assert d.inputs["input"].shape == x.shape and d.inputs["input"].dtype == np.float32
    assert np.abs(d.inputs["input"] - x).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(d.labels, y)
    d.check_labels(10)
    nhwc = load_image_folder(folder, spec.replace(layout="NHWC"))
    np.testing.assert_allclose(
        nhwc.x, np.load(ROOT / "models" / "digits_test_nhwc.npz")["x"], atol=0.5 / 255 + 1e-6
    )
