"""Rendered text lines with known strings, for PP-OCR's text recognizer (CTC; ``ppocr_rec``).

Each item is a tight crop of one short line (seeded): one to three tokens among common English words
(lower, Capitalised or UPPER case), numbers of 1 to 4 digits, decimals ("12.50") and ranges ("3-17"),
sometimes followed by ":" or ",", dark text on a light background, drawn with Pillow and a DejaVu face (the
copy matplotlib ships). A line is redrawn with other text when its crop would be wider than the input
(aspect over 320 / 48), so no line is squeezed. Every character is in PP-OCRv4's dictionary.

Labels are the strings encoded with the recognizer's own dictionary (the ``character`` entry of the ONNX
model's metadata, PaddleOCR's convention: class 0 the CTC blank, class i the dictionary's line i, the last
class a space; :func:`onnxshap.metrics.ctc.paddle_charset`), as int64 [N, L] right-padded with -1: the
labels of ``onnxshap run ppocr_rec.onnx --data lines.npz --metric ctc``.

Preprocessing reproduces rapidocr-onnxruntime 1.4.4's ``TextRecognizer.resize_norm_img`` for
``rec_img_shape = [3, 48, 320]`` (resize to height 48 keeping the aspect ratio, pixels
``(v / 255 - 0.5) / 0.5``, zero-padded on the right to width 320), with Pillow's bilinear filter instead
of OpenCV's (grey lines, so BGR vs RGB does not matter); see :mod:`models.textlines`. Margins are small
(2 to 5 pixels left and right): with wider ones PP-OCRv4 reads the blank margin as a leading or trailing
space (86% of 128 lines read exactly with 4 to 11 pixels, 99% of 192 with 2 to 5).

    python -m models.textlines_rec OUT.npz [--n 64] [--seed 0] [--read]
    # x [N,3,48,320], y [N,L] (-1 padded), text [N]; --read: how well the unmodified model reads them
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.textlines import HEIGHT, WORDS, preprocess, render_text
from onnxshap.data import Dataset
from onnxshap.metrics.ctc import encode, paddle_charset

__all__ = ["WIDTH", "RecLine", "make_dataset", "model_charset", "read_lines", "render_lines", "write_npz"]

WIDTH = 320  # rapidocr's rec_img_shape [3, 48, 320]: 40 CTC time steps
FONT_SIZES = (28, 40)  # pixels, inclusive
TEXT_GREY = (0, 70)  # text darkness, inclusive
BACKGROUND_GREY = (190, 255)  # background lightness, inclusive
PAD_X, PAD_Y = (2, 6), (2, 6)  # margins, exclusive upper bounds
CHARS = (3, 16)  # characters per line, inclusive (spaces counted)
PUNCTUATION = ":,"


@dataclass(frozen=True)
class RecLine:
    """One rendered line: the grey-scale crop, its text, font and size."""

    image: Image.Image
    text: str
    font: str
    font_size: int


def _token(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.2:
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))
    if kind < 0.27:
        return f"{int(rng.integers(0, 100))}.{int(rng.integers(0, 100)):02d}"
    if kind < 0.32:
        return f"{int(rng.integers(1, 32))}-{int(rng.integers(1, 32))}"
    word = WORDS[int(rng.integers(len(WORDS)))]
    case = rng.random()
    word = word.capitalize() if case < 0.3 else word.upper() if case < 0.4 else word
    return word + PUNCTUATION[int(rng.integers(len(PUNCTUATION)))] if rng.random() < 0.1 else word


def _text(rng: np.random.Generator) -> str:
    while True:
        text = " ".join(_token(rng) for _ in range(int(rng.integers(1, 4))))
        if CHARS[0] <= len(text) <= CHARS[1]:
            return text


def render_lines(n: int, seed: int = 0) -> list[RecLine]:
    """``n`` lines, deterministic for ``seed``, each narrow enough for the input without squeezing."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    lines: list[RecLine] = []
    while len(lines) < n:
        text = _text(rng)
        image, name, size = render_text(rng, text, FONT_SIZES, PAD_X, PAD_Y)
        if image.width * HEIGHT <= WIDTH * image.height:
            lines.append(RecLine(image=image, text=text, font=name, font_size=size))
    return lines


def model_charset(model: str | Path | None = None) -> list[str]:
    """The recognizer's class list (default: the cached ``ppocr_rec`` model, fetched if needed)."""
    if model is None:
        from models.thirdparty import fetch

        model = fetch("ppocr_rec")
    return paddle_charset(model)


def make_dataset(n: int = 64, seed: int = 0, charset: Sequence[str] | None = None) -> Dataset:
    """Dataset with inputs {"x": float32 [n, 3, 48, 320]} and labels int64 [n, L] (-1 padded)."""
    lines = render_lines(n, seed)
    x = np.stack([preprocess(line.image, WIDTH) for line in lines])
    y = encode([line.text for line in lines], charset if charset is not None else model_charset())
    names = [line.text for line in lines]
    return Dataset(inputs={"x": x}, labels=y, names=names, source=f"textlines_rec(n={n}, seed={seed})")


def write_npz(path: str | Path, n: int = 64, seed: int = 0, charset: Sequence[str] | None = None) -> Path:
    """Save ``make_dataset(n, seed)`` as an .npz with ``x``, ``y`` and ``text`` (the strings); return the path."""
    data = make_dataset(n, seed, charset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=data.x, y=data.labels, text=np.array(data.names))
    return path


def read_lines(data: Dataset, model: str | Path, batch: int = 32) -> tuple[float, float]:
    """(share of lines read exactly, mean 1 - normalised edit distance) of the unmodified recognizer."""
    import onnxruntime as ort

    from onnxshap.metrics.ctc import edit_similarities, exact_matches

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    paths = np.concatenate(
        [session.run(None, {"x": data.x[i : i + batch]})[0].argmax(-1) for i in range(0, len(data), batch)]
    )[None]
    assert data.labels is not None
    return float(exact_matches(paths, data.labels).mean()), float(
        edit_similarities(paths, data.labels).mean()
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: write an .npz (the labels need the model's dictionary: ``--model``, default ppocr_rec)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .npz file to write")
    parser.add_argument("--n", type=int, default=64, help="number of lines (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--model", type=Path, default=None, help="recognizer whose dictionary encodes labels")
    parser.add_argument("--read", action="store_true", help="also print how well the model reads the lines")
    args = parser.parse_args(argv)
    if args.model is None:
        from models.thirdparty import fetch

        args.model = fetch("ppocr_rec")
    path = write_npz(args.out, args.n, args.seed, model_charset(args.model))
    print(path)
    if args.read:
        exact, chars = read_lines(make_dataset(args.n, args.seed, model_charset(args.model)), args.model)
        print(
            f"{args.model.name} reads {exact:.1%} of the {args.n} lines exactly (ctc), ctc-chars {chars:.4f}"
        )


if __name__ == "__main__":
    main()
