"""How an image file becomes one model input item: mode, resize, scale, mean/std, channel order, layout, dtype.

A `PreprocessSpec` is plain data (saved as JSON and passed back), and `spec_for_input` guesses one from the
model input's shape and type (layout and channels from where the 1 or 3 sits, size from static dims).

Order of operations in `PreprocessSpec.apply`:

1. convert the image to RGB (also for BGR) or to 8-bit grayscale (Pillow's ITU-R 601-2 luma); 16-bit and
   float grayscale images stay at full depth when `channels` is "gray"; no EXIF rotation (as torchvision's
   PIL loader);
2. resize to `size` = (H, W) with `interpolation`: "stretch" ignores the aspect ratio; "pad" keeps it, fits
   the image inside H x W (new sides rounded half up) and centres it on a canvas of `pad_value` (raw pixel
   units, before scale/mean/std; extra odd pixel goes right/bottom); "crop" keeps it, covers H x W and cuts the
   centre. An image already H x W is not resampled;
3. float64 pixels, reversed to BGR if asked, times `scale`, then (x - mean) / std per channel;
4. arranged as `layout` (without the batch axis) and cast to `dtype` (integer dtypes are rounded and clipped).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from onnxshap.errors import DataError

RESIZE_MODES = ("stretch", "pad", "crop")
CHANNELS = ("RGB", "BGR", "gray")
LAYOUTS = ("NCHW", "NHWC", "NHW")
DTYPES = ("float32", "float16", "float64", "uint8", "int8", "int32", "int64")
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
ONNX_TO_DTYPE = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}
_CHANNEL_ALIASES = {
    "rgb": "RGB",
    "bgr": "BGR",
    "gray": "gray",
    "grey": "gray",
    "l": "gray",
    "grayscale": "gray",
}


def parse_size(value: Any) -> tuple[int, int]:
    """(H, W) from an int (square), a pair, or text like "224", "224x224", "32,100"."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s]+", value.strip().lower()) if p]
        if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
            raise DataError(f"image size {value!r} is not HxW (e.g. 224x224) or a single number")
        value = [int(p) for p in parts]
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value), int(value))
    if isinstance(value, Sequence | np.ndarray) and len(value) == 1:
        value = (value[0], value[0])
    if not isinstance(value, Sequence | np.ndarray) or len(value) != 2:
        raise DataError(f"image size must be (height, width), got {value!r}")
    size = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | np.integer | float) or v != int(v) or v < 1:
            raise DataError(f"image size must be two positive integers (height, width), got {list(value)}")
        size.append(int(v))
    return size[0], size[1]


def _floats(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        value = [value]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a number or one number per channel, got {value!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise DataError(f"{what} must be finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class PreprocessSpec:
    """Preprocessing of one image into one model input item; see the module docstring for the order."""

    size: tuple[int, int]
    resize: str = "stretch"
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    channels: str = "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    pad_value: float = 0.0
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise the user's spellings once, here
        put(self, "size", parse_size(self.size))
        resize = str(self.resize).lower()
        if resize not in RESIZE_MODES:
            raise DataError(f"resize mode {self.resize!r} is not one of {', '.join(RESIZE_MODES)}")
        put(self, "resize", resize)
        channels = _CHANNEL_ALIASES.get(str(self.channels).lower())
        if channels is None:
            raise DataError(f"channels {self.channels!r} is not one of {', '.join(CHANNELS)}")
        put(self, "channels", channels)
        layout = str(self.layout).upper()
        if layout not in LAYOUTS:
            raise DataError(f"layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if layout == "NHW" and channels != "gray":
            raise DataError(f"layout NHW (no channel axis) needs channels 'gray', got {channels!r}")
        put(self, "layout", layout)
        dtype = np.dtype(self.dtype).name if _is_dtype(self.dtype) else str(self.dtype)
        if dtype not in DTYPES:
            raise DataError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        put(self, "dtype", dtype)
        interpolation = str(self.interpolation).lower()
        if interpolation not in INTERPOLATIONS:
            raise DataError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        put(self, "interpolation", interpolation)
        scale = _floats(self.scale, "scale")
        if len(scale) != 1 or scale[0] == 0:
            raise DataError(f"scale must be one non-zero number, got {self.scale!r}")
        put(self, "scale", scale[0])
        pad = _floats(self.pad_value, "pad_value")
        if len(pad) != 1:
            raise DataError(f"pad_value must be one number (raw pixel value), got {self.pad_value!r}")
        put(self, "pad_value", pad[0])
        n = self.num_channels
        for what in ("mean", "std"):
            values = _floats(getattr(self, what), what)
            if len(values) not in (1, n):
                raise DataError(f"{what} has {len(values)} values but channels {channels!r} has {n}")
            put(self, what, values)
        if any(v == 0 for v in self.std):
            raise DataError(f"std must not contain 0, got {list(self.std)}")

    @property
    def num_channels(self) -> int:
        """1 for gray, 3 for RGB/BGR."""
        return 1 if self.channels == "gray" else 3

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one preprocessed item (no batch axis)."""
        h, w = self.size
        c = self.num_channels
        return {"NCHW": (c, h, w), "NHWC": (h, w, c), "NHW": (h, w)}[self.layout]

    def apply(self, image: Image.Image) -> np.ndarray:
        """One Pillow image -> one model input item (shape `item_shape`, dtype `dtype`)."""
        img = self._resize(_convert_mode(image, self.channels))
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[..., None]
        if self.channels == "BGR":
            arr = arr[..., ::-1]
        arr = (arr * self.scale - np.asarray(self.mean)) / np.asarray(self.std)
        if self.layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        elif self.layout == "NHW":
            arr = arr[..., 0]
        dtype = np.dtype(self.dtype)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arr = np.clip(np.rint(arr), info.min, info.max)
        return np.ascontiguousarray(arr, dtype=dtype)

    def _resize(self, img: Image.Image) -> Image.Image:
        height, width = self.size
        w, h = img.size
        if (w, h) == (width, height):
            return img
        resample = INTERPOLATIONS[self.interpolation]
        if self.resize == "stretch":
            return img.resize((width, height), resample)
        if self.resize == "pad":
            s = min(width / w, height / h)
            nw, nh = (max(1, min(side, int(n * s + 0.5))) for n, side in ((w, width), (h, height)))
            canvas = Image.new(img.mode, (width, height), _fill(img.mode, self.pad_value))
            canvas.paste(img.resize((nw, nh), resample), ((width - nw) // 2, (height - nh) // 2))
            return canvas
        s = max(width / w, height / h)
        nw, nh = (max(side, int(n * s + 0.5)) for n, side in ((w, width), (h, height)))
        left, top = (nw - width) // 2, (nh - height) // 2
        return img.resize((nw, nh), resample).crop((left, top, left + width, top + height))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        out = dataclasses.asdict(self)
        out["size"] = list(self.size)
        out["mean"] = list(self.mean)
        out["std"] = list(self.std)
        return out

    def to_json(self) -> str:
        """The spec as JSON text (what `save` writes)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "preprocessing spec") -> PreprocessSpec:
        """Spec from plain fields; unknown or missing keys are a DataError."""
        if not isinstance(data, dict):
            raise DataError(f"{where} must be a JSON object, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise DataError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
        if "size" not in data:
            raise DataError(f"{where}: missing 'size' ([height, width])")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str, where: str = "preprocessing spec") -> PreprocessSpec:
        """Spec from JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where} is not valid JSON: {exc}") from None
        return cls.from_dict(data, where)

    def save(self, path: str | Path) -> None:
        """Write the spec as JSON."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> PreprocessSpec:
        """Read a spec written by `save`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"preprocessing spec not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read preprocessing spec {path}: {exc}") from None
        return cls.from_json(text, where=f"preprocessing spec {path.name}")

    def replace(self, **overrides: Any) -> PreprocessSpec:
        """Copy with some fields changed; None values are ignored (unset CLI options)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown preprocessing option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides) if overrides else self


def _is_dtype(value: Any) -> bool:
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


def _convert_mode(image: Image.Image, channels: str) -> Image.Image:
    if channels != "gray":
        return image if image.mode == "RGB" else image.convert("RGB")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return image if image.mode == "F" else image.convert("F")  # keep 16-bit / float depth
    return image if image.mode == "L" else image.convert("L")


def _fill(mode: str, value: float) -> float | int | tuple[int, ...]:
    if mode == "F":
        return float(value)
    v = int(min(max(round(value), 0), 255))
    return (v, v, v) if mode == "RGB" else v


def _fmt_shape(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape) + "]"


def spec_for_input(
    shape: Sequence[int | str | None],
    onnx_type: str = "tensor(float)",
    *,
    name: str | None = None,
    **overrides: Any,
) -> PreprocessSpec:
    """Sensible spec for a model input of this shape/type; `overrides` (None = unset) win over guesses.

    [N,3,H,W] -> NCHW RGB; [N,H,W,3] -> NHWC RGB; 1 instead of 3 -> gray; [N,H,W] -> NHW gray; size from the
    static H, W (dynamic ones need `size`); float inputs get scale 1/255, integer inputs scale 1.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(PreprocessSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown preprocessing option(s): {', '.join(unknown)}")
    what = f"input {name!r}" if name else "the model input"
    shape = list(shape)
    if onnx_type not in ONNX_TO_DTYPE:
        raise DataError(f"{what} has type {onnx_type}; images can feed float or integer inputs only")
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    layout = str(overrides["layout"]).upper() if "layout" in overrides else None
    if layout is None:
        if len(dims) == 3:
            layout = "NHW"
        elif len(dims) == 4:
            first, last = dims[1] in (1, 3), dims[3] in (1, 3)
            if first or last:
                layout = "NCHW" if first else "NHWC"
            else:
                raise DataError(
                    f"cannot tell the layout of {what} {_fmt_shape(shape)} (no 1 or 3 channel axis); "
                    "give layout (NCHW or NHWC) and channels"
                )
        else:
            raise DataError(
                f"{what} {_fmt_shape(shape)} is not an image input ([N, C, H, W], [N, H, W, C] or [N, H, W])"
            )
    expected_rank = 3 if layout == "NHW" else 4
    if len(dims) != expected_rank:
        raise DataError(f"layout {layout} does not fit {what} {_fmt_shape(shape)} (rank {len(dims)})")
    if layout == "NCHW":
        c, h, w = dims[1], dims[2], dims[3]
    elif layout == "NHWC":
        h, w, c = dims[1], dims[2], dims[3]
    else:
        c, h, w = 1, dims[1], dims[2]
    if c not in (None, 1, 3):  # only with a given layout: a guessed one has 1 or 3 there
        looks = [k for k, d in (("NCHW", dims[1]), ("NHWC", dims[-1])) if len(dims) == 4 and d in (1, 3)]
        hint = f" (it looks {looks[0]})" if looks else ""
        raise DataError(
            f"layout {layout} does not fit {what} {_fmt_shape(shape)}: its channel axis would have {c}{hint}"
        )
    guessed: dict[str, Any] = {"layout": layout}
    if "channels" in overrides:
        want = 1 if _CHANNEL_ALIASES.get(str(overrides["channels"]).lower()) == "gray" else 3
        if c is not None and want != c:
            raise DataError(
                f"channels {overrides['channels']!r} gives {want} channel(s) but {what} "
                f"{_fmt_shape(shape)} has {c}"
            )
    else:
        guessed["channels"] = "gray" if c == 1 else "RGB"
    if "size" in overrides:
        size = parse_size(overrides["size"])
        if (h is not None and h != size[0]) or (w is not None and w != size[1]):
            raise DataError(
                f"size {size[0]}x{size[1]} does not match {what} {_fmt_shape(shape)} "
                f"(static {h or '?'}x{w or '?'})"
            )
    elif h is None or w is None:
        raise DataError(
            f"{what} {_fmt_shape(shape)} has a dynamic height or width: give the image size (e.g. --size 224x224)"
        )
    else:
        guessed["size"] = (h, w)
    dtype = ONNX_TO_DTYPE[onnx_type]
    guessed["dtype"] = dtype
    guessed["scale"] = 1 / 255 if dtype.startswith("float") else 1.0
    return PreprocessSpec(**{**guessed, **overrides})
