"""check_against_model messages and load_data's dispatch, with tuples and with real onnxruntime input metas."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxshap.data import Dataset, PreprocessSpec, check_against_model, load_data
from onnxshap.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
NCHW = [("x", ["N", 1, 8, 8], "tensor(float)")]
NHWC = [("x", ["batch", 8, 8, 1], "tensor(float)")]


def data(arr: np.ndarray, name: str = "x", images: bool = False) -> Dataset:
    spec = PreprocessSpec(size=(8, 8), channels="gray") if images else None
    return Dataset({name: arr}, spec=spec)


@pytest.mark.parametrize(
    ("metas", "dataset", "message"),
    [
        (
            NCHW,
            data(np.zeros((2, 8, 8, 1), np.float32), images=True),
            "input 'x' expects [N, 1, 8, 8], got [N, 8, 8, 1] (wrong layout? try --layout NCHW)",
        ),
        (
            NHWC,
            data(np.zeros((2, 1, 8, 8), np.float32), images=True),
            "input 'x' expects [N, 8, 8, 1], got [N, 1, 8, 8] (wrong layout? try --layout NHWC)",
        ),
        (
            NCHW,
            data(np.zeros((2, 8, 8, 1), np.float32)),
            "input 'x' expects [N, 1, 8, 8], got [N, 8, 8, 1] (wrong layout? the model wants NCHW: "
            "x.transpose(0, 3, 1, 2))",
        ),
        (
            [("x", ["N", 3, "h", "w"], "tensor(float)")],
            data(np.zeros((2, 32, 32, 3), np.float32)),
            "input 'x' expects [N, 3, h, w], got [N, 32, 32, 3] (wrong layout? the model wants NCHW",
        ),
        (
            NCHW,
            data(np.zeros((2, 8, 8), np.float32)),
            "input 'x' expects [N, 1, 8, 8], got [N, 8, 8] (missing channel axis? add it with x[:, None])",
        ),
        (
            NHWC,
            data(np.zeros((2, 8, 8), np.float32)),
            "input 'x' expects [N, 8, 8, 1], got [N, 8, 8] (missing channel axis? add it with x[..., None])",
        ),
        (
            NCHW,
            data(np.zeros((2, 1, 16, 16), np.float32), images=True),
            "input 'x' expects [N, 1, 8, 8], got [N, 1, 16, 16] (check --size, --channels and --layout)",
        ),
        (
            [("x", [1, 10], "tensor(float)")],
            data(np.zeros((2, 12), np.float32)),
            "input 'x' expects [1, 10], got [N, 12]",
        ),
        (
            NCHW,
            data(np.zeros((2, 1, 8, 8), np.float32), name="input"),
            "no data for model input 'x' (expects [N, 1, 8, 8]); the data has 'input' (name the array 'x' or 'x'",
        ),
        (
            [("ids", ["N", 4], "tensor(int64)")],
            data(np.zeros((2, 4), np.float32), name="ids"),
            "input 'ids' expects int64 values, got float32",
        ),
        (
            [("x", ["N", 1, 8, 8], "tensor(uint8)")],
            data(np.zeros((2, 1, 8, 8), np.float32), images=True),
            "input 'x' expects uint8 values, got float32 (set dtype uint8 in the preprocessing)",
        ),
    ],
)
def test_check_against_model_messages(metas, dataset, message):
    with pytest.raises(DataError, match=re.escape(message)):
        check_against_model(dataset, metas)


def test_check_against_model_accepts_and_rejects_extras():
    d = Dataset({"a": np.zeros((2, 3), np.float32), "b": np.zeros((2,), np.int64)})
    check_against_model(d, [("a", ["N", 3], "tensor(float)"), ("b", [None], "tensor(int64)")])
    check_against_model(Dataset({"x": np.zeros((2, 1, 8, 8), np.float64)}), NCHW)  # float64 -> float is fine
    with pytest.raises(
        DataError, match=r"the data has array\(s\) 'b' that are not model inputs \(model inputs: a\)"
    ):
        check_against_model(d, [("a", ["N", 3], "tensor(float)")])
    masks = [
        ("a", ["N", 3], "tensor(float)"),
        ("b", ["N"], "tensor(int64)"),
        ("mask0", [16], "tensor(float)"),
    ]
    check_against_model(d, masks, skip={"mask0"})


@pytest.fixture(scope="module")
def sessions():
    ort = pytest.importorskip("onnxruntime")
    return {
        name: ort.InferenceSession(str(ROOT / "models" / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        for name in ("digits_cnn_torch", "digits_cnn_keras")
    }


def write_digits_folder(folder: Path, count: int = 60) -> tuple[np.ndarray, np.ndarray]:
    npz = np.load(ROOT / "models" / "digits_test.npz")
    x, y = npz["x"][:count], npz["y"][:count]
    folder.mkdir()
    rows = ["file,label"]
    for i in range(count):
        Image.fromarray(np.rint(x[i, 0] * 255).astype(np.uint8), "L").save(folder / f"{i}.png")
        rows.append(f"{i}.png,{y[i]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return x, y


def test_load_data_with_real_models(tmp_path, sessions):
    torch_in, keras_in = (sessions[n].get_inputs() for n in ("digits_cnn_torch", "digits_cnn_keras"))
    d = load_data(ROOT / "models" / "digits_test.npz", torch_in)
    assert d.input_names == ["input"] and len(d) == 540
    msg = "input 'input' expects [N, 8, 8, 1], got [N, 1, 8, 8] (wrong layout? the model wants NHWC"
    with pytest.raises(DataError, match=re.escape(msg)):
        load_data(ROOT / "models" / "digits_test.npz", keras_in)
    load_data(ROOT / "models" / "digits_test_nhwc.npz", keras_in)

    x, y = write_digits_folder(tmp_path / "digits")
    for session_name, inputs in (("digits_cnn_torch", torch_in), ("digits_cnn_keras", keras_in)):
        images = load_data(tmp_path / "digits", inputs)  # spec guessed from the model input
        assert images.spec is not None and images.spec.channels == "gray" and images.spec.size == (8, 8)
        want = x if images.spec.layout == "NCHW" else x.transpose(0, 2, 3, 1)
        assert np.abs(images.x - want).max() <= 0.5 / 255 + 1e-6
        logits_img = sessions[session_name].run(None, images.inputs)[0]
        logits_npz = sessions[session_name].run(None, {"input": want})[0]
        assert (logits_img.argmax(1) == logits_npz.argmax(1)).mean() >= 0.95
        assert (logits_img.argmax(1) == y).mean() >= 0.9

    with pytest.raises(DataError, match=re.escape("(wrong layout? try --layout NCHW)")):
        load_data(tmp_path / "digits", torch_in, spec=PreprocessSpec(size=8, channels="gray", layout="NHWC"))
    msg = "layout NHWC does not fit input 'input' [batch, 1, 8, 8]: its channel axis would have 8 (it looks NCHW)"
    with pytest.raises(DataError, match=re.escape(msg)):
        load_data(tmp_path / "digits", torch_in, layout="NHWC")


def test_load_data_spec_sources(tmp_path):
    folder = tmp_path / "digits"
    write_digits_folder(folder, count=5)
    spec = PreprocessSpec(size=(8, 8), channels="gray", layout="NHWC")
    spec_file = tmp_path / "spec.json"
    spec.save(spec_file)
    from_file = load_data(folder, spec=spec_file)
    assert from_file.spec == spec and from_file.x.shape == (5, 8, 8, 1) and from_file.input_names == ["x"]
    overridden = load_data(folder, spec=spec, layout="NCHW", channels=None)
    assert overridden.x.shape == (5, 1, 8, 8)
    sized = load_data(folder, size="4x4", channels="gray", layout="NHW", input_name="img")
    assert sized.input_names == ["img"] and sized.x.shape == (5, 4, 4)
    picked = load_data(folder, [("a", ["N", 1, 8, 8], "tensor(float)")], input_name="a")
    assert picked.input_names == ["a"] and picked.x.shape == (5, 1, 8, 8)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda p: p / "missing", {}, "data not found: "),
        (
            lambda p: (p / "data.csv").write_text("a,b\n") and p / "data.csv",
            {},
            "unsupported data file data.csv",
        ),
        (
            lambda p: (p / "labels.csv").write_text("a,1\n") and p / "labels.csv",
            {},
            "unsupported data file labels.csv: give an .npz or a folder of images with labels.csv (give the folder",
        ),
        (
            lambda p: np.savez(p / "d.npz", x=np.zeros((2, 3))) or p / "d.npz",
            {"size": 8},
            "preprocessing options (size) apply to image folders; d.npz holds arrays already preprocessed",
        ),
        (
            lambda p: p,
            {},
            "is an image folder: give a preprocessing spec, the image size, or the model to read it from",
        ),
        (
            lambda p: p,
            {"input_metas": [("a", ["N", 1, 8, 8], "tensor(float)"), ("b", ["N", 2], "tensor(float)")]},
            "the model has 2 inputs (a, b); an image folder feeds one: use an .npz with one array per input",
        ),
        (
            lambda p: p,
            {"input_metas": [("a", ["N", 1, 8, 8], "tensor(float)")], "input_name": "img"},
            "the model has no input 'img' (inputs: a)",
        ),
    ],
)
def test_load_data_errors(tmp_path, make, kwargs, message):
    with pytest.raises(DataError, match=re.escape(message)):
        load_data(make(tmp_path), **kwargs)
