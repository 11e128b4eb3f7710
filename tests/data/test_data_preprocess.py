"""PreprocessSpec against direct numpy computations, its JSON form, and spec_for_input's guesses."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from onnxshap.data import PreprocessSpec, parse_size, spec_for_input
from onnxshap.errors import DataError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)  # H=4, W=6


def luma(rgb: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> L conversion (ITU-R 601-2 in 16-bit fixed point)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def up2(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def reference(resize: str, size: tuple[int, int], pad_value: float, rgb: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 geometry of the 4x6 test image, computed with numpy only (H, W, C)."""
    h, w = size
    big = up2(rgb)  # 8 x 12
    if resize == "stretch":
        assert size == (8, 12)
        return big
    if resize == "pad":  # 12x12 canvas: scale min(12/6, 12/4) = 2 -> 8x12 placed at top (12-8)//2 = 2
        assert size == (12, 12)
        out = np.full((h, w, rgb.shape[2]), pad_value, dtype=np.float64)
        out[2:10, :] = big
        return out
    assert size == (8, 8)  # crop: scale max(8/6, 8/4) = 2 -> 8x12, centre columns 2..10
    return big[:, 2:10]


GEOMETRY = [("stretch", (8, 12)), ("pad", (12, 12)), ("crop", (8, 8))]


@pytest.mark.parametrize(("resize", "size"), GEOMETRY)
@pytest.mark.parametrize("channels", ["RGB", "BGR", "gray"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_apply_matches_numpy(resize, size, channels, layout):
    mean = (0.5,) if channels == "gray" else (0.485, 0.456, 0.406)
    std = (0.25,) if channels == "gray" else (0.229, 0.224, 0.225)
    spec = PreprocessSpec(
        size=size,
        resize=resize,
        scale=1 / 255,
        mean=mean,
        std=std,
        channels=channels,
        layout=layout,
        pad_value=114,
        interpolation="nearest",
    )
    src = {"RGB": RGB, "BGR": RGB, "gray": luma(RGB)[..., None]}[channels]
    raw = reference(resize, size, 114, src.astype(np.float64))
    if channels == "BGR":
        raw = raw[..., ::-1]
    want = (raw / 255 - np.array(mean)) / np.array(std)
    if layout == "NCHW":
        want = want.transpose(2, 0, 1)
    got = spec.apply(Image.fromarray(RGB, "RGB"))
    assert got.dtype == np.float32
    assert got.shape == spec.item_shape == want.shape
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_nhw_layout_and_integer_dtype_are_exact():
    spec = PreprocessSpec(size=(4, 6), channels="gray", layout="NHW", scale=1, dtype="uint8")
    got = spec.apply(Image.fromarray(RGB, "RGB"))
    assert got.dtype == np.uint8 and got.shape == (4, 6)
    np.testing.assert_array_equal(got, luma(RGB))


def test_integer_dtype_rounds_and_clips():
    spec = PreprocessSpec(size=(1, 2), channels="gray", layout="NHW", scale=1, mean=100, dtype="int8")
    img = Image.fromarray(np.array([[0, 250]], dtype=np.uint8), "L")
    np.testing.assert_array_equal(spec.apply(img), np.array([[-100, 127]], dtype=np.int8))


def test_same_size_is_not_resampled_and_bilinear_keeps_constants():
    spec = PreprocessSpec(size=(4, 6), scale=1, layout="NHWC")
    np.testing.assert_array_equal(spec.apply(Image.fromarray(RGB)), RGB.astype(np.float32))
    flat = Image.fromarray(np.full((40, 30, 3), 77, dtype=np.uint8))
    for resize in ("stretch", "pad", "crop"):
        out = PreprocessSpec(size=(10, 10), resize=resize, scale=1, pad_value=77).apply(flat)
        np.testing.assert_allclose(out, 77)


def test_modes_are_converted():
    rgba = Image.fromarray(np.dstack([RGB, np.full((4, 6), 9, np.uint8)]), "RGBA")
    spec = PreprocessSpec(size=(4, 6), scale=1, layout="NHWC")
    np.testing.assert_array_equal(spec.apply(rgba), RGB)
    gray = Image.fromarray(luma(RGB), "L")
    np.testing.assert_array_equal(spec.apply(gray)[..., 0], luma(RGB))  # L -> RGB repeats the channel
    deep = Image.fromarray(np.array([[1000, 60000]], dtype=np.uint16))
    got = PreprocessSpec(size=(1, 2), channels="gray", scale=1 / 65535).apply(deep)
    np.testing.assert_allclose(got[0, 0], [1000 / 65535, 60000 / 65535], rtol=1e-6)


def test_json_round_trip(tmp_path):
    spec = PreprocessSpec(
        size=(224, 200),
        resize="pad",
        scale=1 / 255,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        channels="BGR",
        layout="NHWC",
        dtype="float16",
        pad_value=114,
        interpolation="bicubic",
    )
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    path = tmp_path / "spec.json"
    spec.save(path)
    loaded = PreprocessSpec.load(path)
    assert loaded == spec and loaded.scale == 1 / 255  # exact float round trip
    assert PreprocessSpec.from_json('{"size": [8, 8]}') == PreprocessSpec(size=(8, 8))


def test_spellings_are_normalised():
    spec = PreprocessSpec(
        size="32x100", channels="grey", layout="nhwc", dtype=np.float32, mean="0.5", std=0.5
    )
    assert spec.size == (32, 100) and spec.channels == "gray" and spec.layout == "NHWC"
    assert spec.dtype == "float32" and spec.mean == (0.5,) and spec.std == (0.5,)
    assert parse_size(224) == (224, 224) and parse_size("224") == (224, 224) and parse_size([3, 4]) == (3, 4)
    assert PreprocessSpec(size=(8, 8)).replace(size=None, layout="NHWC").layout == "NHWC"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": "big"}, "is not HxW"),
        ({"size": (0, 8)}, "two positive integers"),
        ({"size": (8, 8), "resize": "zoom"}, "resize mode 'zoom' is not one of stretch, pad, crop"),
        ({"size": (8, 8), "channels": "CMYK"}, "channels 'CMYK' is not one of RGB, BGR, gray"),
        ({"size": (8, 8), "layout": "CHW"}, "layout 'CHW' is not one of"),
        ({"size": (8, 8), "layout": "NHW"}, "layout NHW (no channel axis) needs channels 'gray'"),
        ({"size": (8, 8), "dtype": "complex64"}, "dtype 'complex64' is not one of"),
        ({"size": (8, 8), "dtype": "nonsense"}, "dtype 'nonsense' is not one of"),
        ({"size": (8, 8), "std": (1, 0, 1)}, "std must not contain 0"),
        ({"size": (8, 8), "mean": (0.1, 0.2)}, "mean has 2 values but channels 'RGB' has 3"),
        ({"size": (8, 8), "scale": 0}, "scale must be one non-zero number"),
        ({"size": (8, 8), "interpolation": "cubic"}, "interpolation 'cubic' is not one of"),
    ],
)
def test_bad_spec_fields(fields, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PreprocessSpec(**fields)


def test_bad_json(tmp_path):
    with pytest.raises(DataError, match="is not valid JSON"):
        PreprocessSpec.from_json("{size: 8}")
    with pytest.raises(DataError, match=r"unknown key\(s\) colour"):
        PreprocessSpec.from_json('{"size": [8, 8], "colour": "RGB"}')
    with pytest.raises(DataError, match="missing 'size'"):
        PreprocessSpec.from_json('{"layout": "NCHW"}')
    with pytest.raises(DataError, match="must be a JSON object"):
        PreprocessSpec.from_json("[8, 8]")
    with pytest.raises(DataError, match="preprocessing spec not found"):
        PreprocessSpec.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("shape", "onnx_type", "overrides", "expect"),
    [
        (["N", 3, 224, 224], "tensor(float)", {}, ("NCHW", "RGB", (224, 224), "float32", 1 / 255)),
        (["batch", 224, 224, 3], "tensor(float)", {}, ("NHWC", "RGB", (224, 224), "float32", 1 / 255)),
        (["batch", 1, 8, 8], "tensor(float)", {}, ("NCHW", "gray", (8, 8), "float32", 1 / 255)),
        ([None, 8, 8, 1], "tensor(float16)", {}, ("NHWC", "gray", (8, 8), "float16", 1 / 255)),
        (["N", 28, 28], "tensor(float)", {}, ("NHW", "gray", (28, 28), "float32", 1 / 255)),
        (
            ["N", 3, "h", "w"],
            "tensor(float)",
            {"size": "32x64"},
            ("NCHW", "RGB", (32, 64), "float32", 1 / 255),
        ),
        ([1, 224, 224, 3], "tensor(uint8)", {"channels": "BGR"}, ("NHWC", "BGR", (224, 224), "uint8", 1.0)),
        (
            ["N", "c", "h", "w"],
            "tensor(float)",
            {"layout": "NCHW", "size": 64},
            ("NCHW", "RGB", (64, 64), "float32", 1 / 255),
        ),
        (
            ["N", 3, 8, 8],
            "tensor(float)",
            {"scale": 1.0, "layout": None},
            ("NCHW", "RGB", (8, 8), "float32", 1.0),
        ),
    ],
)
def test_spec_for_input_guesses(shape, onnx_type, overrides, expect):
    spec = spec_for_input(shape, onnx_type, **overrides)
    assert (spec.layout, spec.channels, spec.size, spec.dtype, spec.scale) == expect


@pytest.mark.parametrize(
    ("shape", "onnx_type", "overrides", "message"),
    [
        (
            ["N", 3, "height", "width"],
            "tensor(float)",
            {},
            r"input 'img' \[N, 3, height, width\] has a dynamic height or width: give the image size",
        ),
        (
            ["N", 3, 8, 8],
            "tensor(float)",
            {"size": (16, 16)},
            r"size 16x16 does not match input 'img' \[N, 3, 8, 8\] \(static 8x8\)",
        ),
        (
            ["N", 3, 8, 8],
            "tensor(float)",
            {"channels": "gray"},
            r"channels 'gray' gives 1 channel\(s\) but input 'img' \[N, 3, 8, 8\] has 3",
        ),
        (["N", 5, 5, 5], "tensor(float)", {}, r"cannot tell the layout of input 'img' \[N, 5, 5, 5\]"),
        (
            ["N", 4, 8, 8],
            "tensor(float)",
            {"layout": "NCHW"},
            r"layout NCHW does not fit input 'img' \[N, 4, 8, 8\]: its channel axis would have 4$",
        ),
        (
            ["N", 4, 8, 8],
            "tensor(float)",
            {},
            r"cannot tell the layout of input 'img' \[N, 4, 8, 8\] \(no 1 or 3",
        ),
        (["N", 10], "tensor(float)", {}, r"input 'img' \[N, 10\] is not an image input"),
        (
            ["N", 3, 8, 8],
            "tensor(string)",
            {},
            "has type tensor\\(string\\); images can feed float or integer inputs only",
        ),
        (["N", 8, 8], "tensor(float)", {"layout": "NCHW"}, "layout NCHW does not fit"),
    ],
)
def test_spec_for_input_errors(shape, onnx_type, overrides, message):
    with pytest.raises(DataError, match=message):
        spec_for_input(shape, onnx_type, name="img", **overrides)


def test_spec_for_input_rejects_unknown_options():
    with pytest.raises(TypeError, match="colour"):
        spec_for_input(["N", 3, 8, 8], "tensor(float)", colour="RGB")
