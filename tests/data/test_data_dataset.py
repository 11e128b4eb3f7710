"""Dataset: validation, subset, seeded stratified split, sample, fingerprint, label checks."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.data import Dataset
from onnxshap.errors import DataError


def make(n: int = 100, classes: int = 4, groups: bool = False, names: bool = False) -> Dataset:
    labels = np.arange(n) % classes
    return Dataset(
        inputs={"a": np.arange(n, dtype=np.float32)[:, None] * np.ones(3, np.float32), "b": np.arange(n)},
        labels=labels,
        groups=(np.arange(n) // 7 % 2) if groups else None,
        names=[f"img{i}.png" for i in range(n)] if names else None,
        source="test",
    )


def ids(d: Dataset) -> np.ndarray:
    return d.inputs["b"]


def test_basics():
    d = make(10, names=True)
    assert len(d) == 10 and d.input_names == ["a", "b"]
    assert d.labels is not None and d.labels.dtype == np.int64
    s = d.subset([7, 2])
    assert list(ids(s)) == [7, 2] and list(s.labels) == [3, 2] and s.names == ["img7.png", "img2.png"]
    assert list(ids(d.subset(np.arange(10) % 2 == 0))) == [0, 2, 4, 6, 8]
    assert "10 items" in repr(d)
    with pytest.raises(DataError, match="pick one by name"):
        _ = d.x
    assert Dataset({"x": np.zeros((3, 2))}).x.shape == (3, 2)


def test_groups_can_be_strings():
    d = Dataset({"x": np.zeros((3, 1))}, labels=[0, 1, 0], groups=np.array(["f", "m", "f"]))
    assert d.groups is not None and d.groups.dtype.kind == "U"
    assert list(d.subset([1]).groups) == ["m"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": {}}, "no input arrays"),
        (
            {"inputs": {"x": np.zeros((3, 2)), "z": np.zeros(4)}},
            "inputs differ in length: 'x' has 3 items, 'z' has 4",
        ),
        ({"inputs": {"x": np.float32(1)}}, "input 'x' is a scalar"),
        ({"inputs": {"x": np.array(["a", "b"])}}, "input 'x' holds str"),
        ({"labels": [0, 1]}, "labels has 2 items but the inputs have 3"),
        (
            {"labels": [0.0, 1.0, 2.0]},
            r"labels must hold integer class ids, got float64 \(the values are whole",
        ),
        (
            {"labels": np.eye(3)},
            r"must be 1-D class ids, got shape \[3, 3\] \(one-hot\? save y.argmax\(1\)\)",
        ),
        ({"groups": [0.5, 1, 2]}, "groups must hold integer or string group ids, got float64"),
        ({"groups": [1, 2]}, "groups has 2 items"),
        ({"names": ["a"]}, "1 names for 3 items"),
    ],
)
def test_bad_construction(kwargs, message):
    fields = {"inputs": {"x": np.zeros((3, 2))}, "source": "src", **kwargs}
    with pytest.raises(DataError, match=message):
        Dataset(**fields)


def test_labels_column_vector_is_flattened():
    d = Dataset({"x": np.zeros((3, 2))}, labels=np.array([[1], [2], [0]], dtype=np.uint8))
    assert d.labels is not None and d.labels.shape == (3,) and d.labels.dtype == np.int64


def test_split_deterministic_disjoint_complete():
    d = make(100)
    v1, h1 = d.split(0.3, seed=5)
    v2, h2 = d.split(0.3, seed=5)
    assert np.array_equal(ids(v1), ids(v2)) and np.array_equal(ids(h1), ids(h2))
    assert len(h1) == 30 and len(v1) == 70
    assert not set(ids(v1)) & set(ids(h1))
    assert sorted([*ids(v1), *ids(h1)]) == list(range(100))
    assert list(ids(h1)) == sorted(ids(h1))  # item order kept
    _, h3 = d.split(0.3, seed=6)
    assert not np.array_equal(ids(h1), ids(h3))


def test_split_stratified():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    d = Dataset({"x": np.arange(100)}, labels=labels)
    for seed in range(5):
        _, hold = d.split(0.5, seed=seed)
        assert hold.labels is not None
        assert list(np.bincount(hold.labels)) == [30, 15, 5]
        _, hold = d.split(0.25, seed=seed)  # quotas 15, 7.5, 2.5 -> largest remainder gives 25 in all
        counts = np.bincount(hold.labels)
        assert counts.sum() == 25 and counts[0] == 15 and set(counts[1:]) <= {2, 3, 7, 8}


def test_split_stratifies_label_and_group():
    d = make(112, classes=2, groups=True)
    _, hold = d.split(0.5, seed=1)
    assert hold.labels is not None and hold.groups is not None
    for label in (0, 1):
        for group in (0, 1):
            total = np.sum((d.labels == label) & (d.groups == group))
            held = np.sum((hold.labels == label) & (hold.groups == group))
            assert abs(held - total / 2) <= 1


def test_split_edges():
    d = make(10)
    valuation, hold = d.split(0, seed=0)
    assert len(valuation) == 10 and len(hold) == 0 and hold.input_names == ["a", "b"]
    valuation, hold = d.split(0.99, seed=0)
    assert len(valuation) == 1 and len(hold) == 9
    valuation, hold = d.split(0.01, seed=0, stratify=False)
    assert len(valuation) == 9 and len(hold) == 1
    v, h = Dataset({"x": np.arange(5)}).split(0.4, seed=3)  # no labels: plain random
    assert len(h) == 2 and len(v) == 3
    for bad in (1, 1.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(DataError, match=r"held-out fraction must be in \[0, 1\)"):
            d.split(bad, seed=0)


def test_sample():
    d = make(50)
    s1 = d.sample(np.random.default_rng(3), 10)
    s2 = d.sample(np.random.default_rng(3), 10)
    assert len(s1) == 10 and np.array_equal(ids(s1), ids(s2)) and len(set(ids(s1))) == 10
    assert d.sample(0, 50) is d and d.sample(0, 500) is d
    with pytest.raises(DataError, match="at least 1"):
        d.sample(0, 0)


def test_fingerprint():
    d = make(20, groups=True)
    assert d.fingerprint() == make(20, groups=True).fingerprint()
    assert len(d.fingerprint()) == 64
    assert d.fingerprint() != make(20).fingerprint()  # groups count
    changed = make(20, groups=True)
    changed.inputs["a"][3, 1] += 1e-3
    assert changed.fingerprint() != d.fingerprint()
    relabeled = Dataset(dict(d.inputs), labels=np.roll(d.labels, 1), groups=d.groups)
    assert relabeled.fingerprint() != d.fingerprint()
    assert make(20, groups=True, names=True).fingerprint() == d.fingerprint()  # names are not data
    d.subset(np.arange(0, 20, 3)).fingerprint()  # non-contiguous views hash fine


def test_check_labels():
    d = Dataset({"x": np.zeros((4, 1))}, labels=[0, 9, 10, 12], names=list("abcd"), source="imgs")
    d.subset([0, 1]).check_labels(10)
    with pytest.raises(
        DataError, match=r"imgs: label 10 of 'c' is not a class of the model \(0..9\) \(2 labels"
    ):
        d.check_labels(10)
    with pytest.raises(DataError, match="label -1 of item 1 is not a class"):
        Dataset({"x": np.zeros((2, 1))}, labels=[0, -1]).check_labels(3)
    with pytest.raises(DataError, match="the data has no labels"):
        Dataset({"x": np.zeros((2, 1))}).check_labels(3)
