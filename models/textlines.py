"""Rendered text-line images with known orientation labels, for PP-OCR's text-direction classifier.

Each item is a tight crop of one short line of random words and numbers (seeded), dark text on a light
background, drawn with Pillow and a DejaVu face (the copy matplotlib ships, so no system fonts are needed).
Half of the lines (exactly ``n // 2``, at random positions) are rotated by 180 degrees. Labels follow the
model's label list ``['0', '180']``: 0 = upright, 1 = rotated by 180 degrees.

Preprocessing reproduces rapidocr-onnxruntime 1.4.4's ``TextClassifier.resize_norm_img`` for
``cls_image_shape = [3, 48, 192]``: resize to height 48 keeping the aspect ratio (width
``ceil(48 * w / h)``, capped at 192), pixels ``(v / 255 - 0.5) / 0.5``, CHW, zero-padded on the right up to
width 192 (zero after normalisation, i.e. mid-grey). rapidocr resizes with OpenCV's bilinear filter and
feeds BGR; here Pillow's bilinear filter is used (the scale factor is close to 1) and the lines are grey,
so the channel order does not matter.

    python -m models.textlines OUT.npz [--n 128] [--seed 0]     # x [N,3,48,192] float32, y [N] int64
    python -m models.textlines OUT_FOLDER --png [--n 128]       # PNG crops + labels.csv (+ preprocess.json)

The image-folder route (``onnxshap run --data FOLDER --spec FOLDER/preprocess.json``) is close but not
identical: onnxshap's "pad" mode centres the resized line and pads in raw pixels (127.5 -> 128, i.e.
+0.0039 after normalisation) where rapidocr pads on the right with exact zeros. The ``.npz`` route is the
reference.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from onnxshap.data import Dataset, PreprocessSpec

__all__ = [
    "FONT_FILES",
    "HEIGHT",
    "WIDTH",
    "TextLine",
    "folder_spec",
    "font_path",
    "make_dataset",
    "preprocess",
    "render_lines",
    "write_folder",
    "write_npz",
]

HEIGHT, WIDTH = 48, 192  # rapidocr's cls_image_shape [3, 48, 192]
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
FONT_SIZES = (20, 40)  # pixels, inclusive: typical text crops before resizing
TEXT_GREY = (0, 70)  # text darkness, inclusive
BACKGROUND_GREY = (190, 255)  # background lightness, inclusive
PAD_X, PAD_Y = (2, 8), (2, 6)  # margins around the ink (x) and the font's line box (y), exclusive upper
MIN_CHARS = 4  # characters per line at least, spaces not counted

# Common English words (a fixed list, so the data does not depend on any installed dictionary).
_WORD_LIST = """
    the of and to in is you that it he was for on are as with his they at be this have from or one had by
    word but not what all were we when your can said there use an each which she do how their if will up
    other about out many then them these so some her would make like him into time has look two more write
    go see number no way could people my than first water been call who oil its now find long down day did
    get come made may part over new sound take only little work know place year live me back give most very
    after thing our just name good sentence man think say great where help through much before line right
    too mean old any same tell boy follow came want show also around form three small set put end does
    another well large must big even such because turn here why ask went men read need land different home
    us move try kind hand picture again change off play spell air away animal house point page letter
    mother answer found study still learn should world high every near add food between own below country
    plant last school father keep tree never start city earth eye light thought head under story saw left
    few while along might close something seem next hard open example begin life always those both paper
    together got group often run important until children side feet car mile night walk white sea began
    grow took river four carry state once book hear stop without second later miss idea enough eat face
    watch far real almost let above girl sometimes mountain cut young talk soon list song being leave
    family total price order invoice street road station account date amount receipt market north south
"""
WORDS = tuple(_WORD_LIST.split())


@dataclass(frozen=True)
class TextLine:
    """One rendered line: the image as fed to the model (already rotated if label is 1), text and label."""

    image: Image.Image
    text: str
    label: int
    font: str
    font_size: int


def font_path(name: str = "DejaVuSans.ttf") -> Path:
    """Path of a DejaVu font file: matplotlib's bundled copy, else the system's (fontconfig layout)."""
    candidates: list[Path] = []
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)
    except ImportError:  # pragma: no cover - matplotlib is a dependency of onnxshap
        pass
    candidates += [Path("/usr/share/fonts/truetype/dejavu") / name, Path("/usr/share/fonts/dejavu") / name]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"font {name} not found (looked in {', '.join(str(p.parent) for p in candidates)})"
    )


@lru_cache(maxsize=256)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size)


def _text(rng: np.random.Generator) -> str:
    """One to three tokens (more while under MIN_CHARS characters): words (lower, Capitalised or UPPER
    case) and numbers of 1 to 4 digits. Very short lines ("1", "0", "SOS") look the same upside down."""
    tokens: list[str] = []
    count = int(rng.integers(1, 4))
    while len(tokens) < count or sum(map(len, tokens)) < MIN_CHARS:
        if rng.random() < 0.25:
            tokens.append(str(int(rng.integers(0, 10 ** int(rng.integers(1, 5))))))
            continue
        word = WORDS[int(rng.integers(len(WORDS)))]
        case = rng.random()
        tokens.append(word.capitalize() if case < 0.3 else word.upper() if case < 0.4 else word)
    return " ".join(tokens)


def render_text(
    rng: np.random.Generator,
    text: str,
    font_sizes: tuple[int, int] = FONT_SIZES,
    pad_x: tuple[int, int] = PAD_X,
    pad_y: tuple[int, int] = PAD_Y,
) -> tuple[Image.Image, str, int]:
    """A tight grey-scale crop of ``text``: the ink's width plus a margin, the font's line box in height.

    Font, size, text and background greys and margins are drawn from ``rng`` in that order."""
    name = FONT_FILES[int(rng.integers(len(FONT_FILES)))]
    size = int(rng.integers(font_sizes[0], font_sizes[1] + 1))
    fg = int(rng.integers(TEXT_GREY[0], TEXT_GREY[1] + 1))
    bg = int(rng.integers(BACKGROUND_GREY[0], BACKGROUND_GREY[1] + 1))
    px, py = int(rng.integers(*pad_x)), int(rng.integers(*pad_y))
    font = _font(name, size)
    left, _, right, _ = font.getbbox(text)
    ascent, descent = font.getmetrics()
    image = Image.new("L", (right - left + 2 * px, ascent + descent + 2 * py), bg)
    ImageDraw.Draw(image).text((px - left, py), text, fill=fg, font=font)
    return image, name, size


def render_lines(n: int, seed: int = 0) -> list[TextLine]:
    """``n`` text lines, deterministic for ``seed``; exactly ``n // 2`` of them rotated by 180 degrees."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.permutation(n)[: n // 2]] = 1
    lines = []
    for label in labels:
        text = _text(rng)
        image, name, size = render_text(rng, text)
        if label:
            image = image.transpose(Image.Transpose.ROTATE_180)
        lines.append(TextLine(image=image, text=text, label=int(label), font=name, font_size=size))
    return lines


def preprocess(image: Image.Image, width: int = WIDTH) -> np.ndarray:
    """One line -> float32 [3, 48, width] as rapidocr feeds it (see the module docstring; the recognizer
    uses the same resize, normalisation and right padding with width 320)."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    resized_w = min(width, math.ceil(HEIGHT * w / h))
    arr = np.asarray(rgb.resize((resized_w, HEIGHT), Image.Resampling.BILINEAR), dtype=np.float32)
    arr = (arr / 255.0 - 0.5) / 0.5
    out = np.zeros((3, HEIGHT, width), dtype=np.float32)
    out[:, :, :resized_w] = arr.transpose(2, 0, 1)
    return out


def make_dataset(n: int = 128, seed: int = 0) -> Dataset:
    """Dataset with inputs {"x": float32 [n, 3, 48, 192]} and labels (0 upright, 1 rotated 180)."""
    lines = render_lines(n, seed)
    x = np.stack([preprocess(line.image) for line in lines])
    y = np.array([line.label for line in lines], dtype=np.int64)
    names = [f"line_{i:04d}.png" for i in range(n)]
    return Dataset(inputs={"x": x}, labels=y, names=names, source=f"textlines(n={n}, seed={seed})")


def write_npz(path: str | Path, n: int = 128, seed: int = 0) -> Path:
    """Save ``make_dataset(n, seed)`` as an .npz with ``x`` and ``y``; return the path."""
    data = make_dataset(n, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=data.x, y=data.labels)
    return path


def folder_spec() -> PreprocessSpec:
    """The closest onnxshap image-folder preprocessing (centred, not right-side, padding; see above)."""
    return PreprocessSpec(
        size=(HEIGHT, WIDTH), resize="pad", scale=1 / 255, mean=(0.5,), std=(0.5,), pad_value=127.5
    )


def write_folder(folder: str | Path, n: int = 128, seed: int = 0) -> Path:
    """Write the lines as PNGs with ``labels.csv`` (file,label,text) and ``preprocess.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = render_lines(n, seed)
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "text"])
        for i, line in enumerate(lines):
            name = f"line_{i:04d}.png"
            line.image.save(folder / name)
            writer.writerow([name, line.label, line.text])
    folder_spec().save(folder / "preprocess.json")
    return folder


def main(argv: list[str] | None = None) -> None:
    """Command line: write an .npz (default) or a PNG folder (``--png``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an .npz file, or a folder with --png")
    parser.add_argument("--n", type=int, default=128, help="number of lines (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--png", action="store_true", help="write PNGs + labels.csv into the folder OUT")
    args = parser.parse_args(argv)
    out = write_folder(args.out, args.n, args.seed) if args.png else write_npz(args.out, args.n, args.seed)
    print(out)


if __name__ == "__main__":
    main()
