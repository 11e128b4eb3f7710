"""CTC sequence models (text recognizers): greedy decoding of per-step class scores against label sequences.

Outputs are batch-major class scores [N, T, C] (T time steps, C classes, class ``blank`` the CTC blank);
labels are integer class sequences [N, L], right-padded with -1 (the target string encoded with the
model's dictionary: :func:`encode`). Decoding is greedy, as PaddleOCR's and rapidocr's CTCLabelDecode:
the best class of each step, repeats collapsed, blanks dropped. The reduction runs in the graph (an ArgMax
over the class axis), so only the [N, T] best classes leave ONNX Runtime.

- ``ctc``: the share of items decoded exactly (the recognizer's line accuracy).
- ``ctc-chars``: the mean over items of 1 - Levenshtein(decoded, label) / max(their lengths) (PaddleOCR's
  ``norm_edit_dis``; 1 when both are empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from onnxshap.errors import DataError
from onnxshap.metrics.base import Metric

PAD = -1


def best_paths(outputs: np.ndarray) -> np.ndarray:
    """Best class per step [m, N, T] from scores [m, N, T, C], or classes already taken in the graph."""
    if np.issubdtype(outputs.dtype, np.integer):
        return outputs
    return outputs.argmax(axis=-1)


def greedy_decode(paths: np.ndarray, blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Collapse repeats and drop blanks: paths [..., T] -> (sequences [..., T] left-aligned and -1 padded,
    lengths [...])."""
    paths = np.asarray(paths)
    keep = paths != blank
    keep[..., 1:] &= paths[..., 1:] != paths[..., :-1]
    position = np.cumsum(keep, axis=-1) - 1
    decoded = np.full(paths.shape, PAD, dtype=np.int64)
    where = np.nonzero(keep)
    decoded[(*where[:-1], position[keep])] = paths[keep]
    return decoded, keep.sum(axis=-1)


def _widen(seqs: np.ndarray, width: int) -> np.ndarray:
    pad = width - seqs.shape[-1]
    return seqs if pad <= 0 else np.pad(seqs, [(0, 0)] * (seqs.ndim - 1) + [(0, pad)], constant_values=PAD)


def exact_matches(paths: np.ndarray, labels: np.ndarray, blank: int = 0) -> np.ndarray:
    """bool [m, N]: whether each item's greedy decoding equals its label sequence."""
    decoded, _ = greedy_decode(paths, blank)
    width = max(decoded.shape[-1], labels.shape[-1])
    return (_widen(decoded, width) == _widen(labels, width)[None]).all(axis=-1)


def edit_distances(a: np.ndarray, len_a: np.ndarray, b: np.ndarray, len_b: np.ndarray) -> np.ndarray:
    """Levenshtein distances of P pairs of padded sequences: a [P, Ta], b [P, Tb], lengths [P] -> [P].

    The dynamic programme runs row by row over a, vectorised over the pairs; within a row, insertions are
    a running minimum: D[i, j] = j + min_{k <= j} (D'[i, k] - k), D' being the substitution/deletion step.
    """
    pairs, cols = len(a), b.shape[1] + 1
    steps = np.arange(cols)
    row = np.broadcast_to(steps, (pairs, cols)).copy()
    rows = np.arange(pairs)
    out = row[rows, len_b].copy()  # pairs with an empty a
    for i in range(1, a.shape[1] + 1):
        step = np.empty_like(row)
        step[:, 0] = i
        step[:, 1:] = np.minimum(row[:, :-1] + (a[:, i - 1 : i] != b), row[:, 1:] + 1)
        row = np.minimum.accumulate(step - steps, axis=1) + steps
        done = len_a == i
        out[done] = row[rows[done], len_b[done]]
    return out


def edit_similarities(paths: np.ndarray, labels: np.ndarray, blank: int = 0) -> np.ndarray:
    """float [m, N]: 1 - normalised edit distance between each item's greedy decoding and its label."""
    decoded, len_a = greedy_decode(paths, blank)
    m, n = decoded.shape[:2]
    len_b = (labels != PAD).sum(axis=-1)
    tiled = np.broadcast_to(labels, (m, *labels.shape)).reshape(m * n, -1)
    dist = edit_distances(decoded.reshape(m * n, -1), len_a.reshape(-1), tiled, np.tile(len_b, m))
    dist = dist.reshape(m, n)
    longest = np.maximum(len_a, len_b[None])
    return 1.0 - np.divide(dist, longest, out=np.zeros((m, n)), where=longest > 0)


def encode(texts: Sequence[str], charset: Sequence[str], length: int | None = None) -> np.ndarray:
    """Label sequences [N, L] (int64, -1 padded) of `texts` in a dictionary: `charset[i]` is the character
    of class i (the blank's entry is never matched). `length` defaults to the longest text."""
    index = {c: i for i, c in enumerate(charset) if c}
    width = max([len(t) for t in texts] + [0]) if length is None else length
    out = np.full((len(texts), width), PAD, dtype=np.int64)
    for row, text in enumerate(texts):
        missing = sorted({c for c in text if c not in index})
        if missing:
            raise DataError(f"text {text!r} has characters the dictionary lacks: {''.join(missing)!r}")
        if len(text) > width:
            raise DataError(f"text {text!r} is longer than {width} characters")
        out[row, : len(text)] = [index[c] for c in text]
    return out


def decode_text(sequence: np.ndarray, charset: Sequence[str]) -> str:
    """The string of one label or decoded sequence (padding dropped)."""
    return "".join(charset[int(i)] for i in np.asarray(sequence) if i != PAD)


def paddle_charset(model: str | Path, key: str = "character", space: bool = True) -> list[str]:
    """PaddleOCR's class list of a recognizer whose dictionary is in the model's metadata (one character per
    line under `key`, as paddle2onnx exports carry it): "" (the blank, class 0), the dictionary, then " "
    when `space` (PaddleOCR's use_space_char, what rapidocr does)."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if key not in props:
        raise DataError(f"{Path(model).name} has no {key!r} entry in its metadata (keys: {sorted(props)})")
    return ["", *props[key].splitlines(), *([" "] if space else [])]


class SequenceExactMatch(Metric):
    """Share of items whose greedy CTC decoding equals the label sequence exactly."""

    name = "ctc"
    reduction = "argmax-last"
    value_range = 1.0
    chance = 0.0

    def __init__(self, blank: int = 0):
        self.blank = int(blank)

    def prepare(self, reference, labels, groups) -> None:
        if reference.ndim != 3:
            raise DataError(
                f"metric {self.name!r} needs sequence outputs [N, steps, classes]; got per-item shape "
                f"{list(reference.shape[1:])} (choose another output or metric)"
            )
        check_sequence_labels(self.sequences(labels), reference.shape[2], reference.shape[1], self.blank)

    def sequences(self, labels: np.ndarray | None) -> np.ndarray:
        """Labels as [N, L] (a 1-D array is one character per item: [N, 1])."""
        y = self.check_labels(labels)
        return y[:, None] if y.ndim == 1 else y

    def __call__(self, outputs, labels, groups):
        return exact_matches(best_paths(outputs), self.sequences(labels), self.blank).mean(axis=1)

    def describe(self) -> str:
        return f"{self.name} (share of lines decoded exactly; greedy CTC, blank {self.blank})"


class SequenceCharSimilarity(SequenceExactMatch):
    """Mean over items of 1 - normalised edit distance between the greedy decoding and the label."""

    name = "ctc-chars"

    def __call__(self, outputs, labels, groups):
        return edit_similarities(best_paths(outputs), self.sequences(labels), self.blank).mean(axis=1)

    def describe(self) -> str:
        return f"{self.name} (mean 1 - normalised edit distance; greedy CTC, blank {self.blank})"


def check_sequence_labels(labels: np.ndarray, classes: int, steps: int, blank: int) -> None:
    """Labels must be [N, L] integer classes of the model, never the blank, right-padded with -1, and
    short enough to be decoded from `steps` time steps (a repeated character needs a blank between)."""
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"CTC labels must be integer sequences [N, L] padded with -1; got {labels.dtype.name} "
            f"{list(labels.shape)}"
        )
    bad = (labels < PAD) | (labels >= classes) | (labels == blank)
    if bad.any():
        item, pos = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(
            f"label of item {item} has class {int(labels[item, pos])} at position {pos}: not a character "
            f"class of this model (1..{classes - 1} besides the blank {blank}, or -1 padding)"
        )
    padded = labels == PAD
    inner = padded[:, :-1] & ~padded[:, 1:]
    if inner.any():
        item = int(np.nonzero(inner)[0][0])
        raise DataError(f"label of item {item} has -1 before a character (pad on the right only)")
    length = (~padded).sum(axis=1)
    repeats = ((labels[:, 1:] == labels[:, :-1]) & ~padded[:, 1:]).sum(axis=1)
    needed = length + repeats
    if (needed > steps).any():
        item = int(np.argmax(needed > steps))
        raise DataError(
            f"label of item {item} needs {int(needed[item])} time steps but the model emits {steps}: "
            "it can never be decoded (a wider input gives more steps)"
        )
