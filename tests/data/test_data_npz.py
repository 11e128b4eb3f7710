"""The .npz loader: round trips (groups, multi-input) and one clear error per kind of bad file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from onnxshap.data import load_npz
from onnxshap.errors import DataError

X = np.random.default_rng(0).random((6, 1, 4, 4), dtype=np.float32)
Y = np.array([0, 1, 2, 0, 1, 2])


def save(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


def test_round_trip_with_groups(tmp_path):
    path = save(tmp_path / "d.npz", x=X, y=Y, group=np.array(["a", "b", "a", "b", "a", "b"]))
    d = load_npz(path, ["input"])
    assert d.input_names == ["input"] and d.source == str(path)
    np.testing.assert_array_equal(d.inputs["input"], X)
    assert d.labels is not None and d.labels.dtype == np.int64 and list(d.labels) == list(Y)
    assert d.groups is not None and list(d.groups) == list("ababab")
    plain = load_npz(path)
    assert plain.input_names == ["x"]


def test_int_groups_and_no_labels(tmp_path):
    d = load_npz(save(tmp_path / "d.npz", x=X, groups=np.arange(6) % 3))
    assert d.labels is None and d.groups is not None and d.groups.dtype == np.int64


def test_multi_input(tmp_path):
    a, b = np.zeros((6, 3), np.float32), np.ones((6, 2, 2), np.int64)
    path = save(tmp_path / "m.npz", a=a, b=b, y=Y, x=X)
    d = load_npz(path, ["a", "b"])
    assert d.input_names == ["a", "b"]
    np.testing.assert_array_equal(d.inputs["b"], b)
    single = load_npz(path, ["a"])  # an array named like the input wins over x
    np.testing.assert_array_equal(single.inputs["a"], a)


@pytest.mark.parametrize(
    ("arrays", "names", "message"),
    [
        ({"data": X}, ["input"], "d.npz has no array 'x' or 'input' (found: 'data')"),
        ({"data": X}, None, "d.npz has no array 'x' (found: 'data')"),
        (
            {"a": X, "x": X},
            ["a", "b"],
            "d.npz needs one array per model input (a, b); missing 'b' (found: 'a', 'x')",
        ),
        ({"x": X, "y": Y[:4]}, None, "d.npz: y has 4 items but 'x' has 6"),
        ({"x": X, "y": Y.astype(np.float32)}, None, "d.npz: y must hold integer class ids, got float32"),
        (
            {"x": X, "y": np.eye(6)[Y].astype(np.int64)},
            None,
            "d.npz: y must be 1-D class ids, got shape [6, 6]",
        ),
        ({"x": X, "group": np.arange(5)}, None, "d.npz: group has 5 items but 'x' has 6"),
        (
            {"x": X, "group": np.linspace(0, 1, 6)},
            None,
            "group must hold integer or string group ids, got float64",
        ),
        ({"x": X[:0], "y": Y[:0]}, None, "d.npz holds no items (array 'x' has 0 rows)"),
        ({"x": np.float32(3)}, None, "d.npz: array 'x' is a scalar"),
        ({"x": np.array(["a", "b"])}, None, "d.npz: array 'x' holds str"),
        ({"a": X, "b": X[:3]}, ["a", "b"], "d.npz: array 'a' has 6 items but 'b' has 3"),
    ],
)
def test_bad_arrays(tmp_path, arrays, names, message):
    path = save(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=re.escape(message)):
        load_npz(path, names)


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope\.npz"):
        load_npz(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="is not a file"):
        load_npz(tmp_path)
    text = tmp_path / "t.npz"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=re.escape("t.npz is not an .npz archive (a zip of arrays")):
        load_npz(text)
    npy = tmp_path / "a.npz"
    with npy.open("wb") as fh:
        np.save(fh, X)
    with pytest.raises(DataError, match=re.escape("a.npz is a single .npy array, not an .npz archive")):
        load_npz(npy)
    broken = tmp_path / "b.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"cannot read b\.npz as \.npz"):
        load_npz(broken)
    pickled = save(tmp_path / "p.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"p\.npz: cannot read array 'x'"):
        load_npz(pickled)
