"""The planted-bias fixture (digits_bias_torch): group A's label cue makes a gap that a few filters carry.

No Shapley here: per-group accuracy shows the gap, cue edits show that the cue causes it, and a leave-one-out
oracle over conv filters (`models.build_bias_fixture.oracle_report`) shows that removing a handful of them
closes most of it on held-out items. onnxruntime only, no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models.build_bias_fixture import (
    CANVAS,
    DATA,
    GROUP_A,
    GROUP_B,
    NAME,
    SPLIT_HELDOUT,
    SPLIT_VALUE,
    group_accuracy,
    oracle_report,
    render,
)

MODELS = Path(__file__).resolve().parents[1] / "models"
ENTRY = next(e for e in json.loads((MODELS / "fixtures.json").read_text()) if e["name"] == NAME)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    with np.load(MODELS / DATA) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def predict():
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(MODELS / ENTRY["file"]), opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(["logits"], {"input": x})[0].argmax(1)


@pytest.fixture(scope="module")
def report():
    return oracle_report(MODELS / ENTRY["file"], MODELS / DATA)


def test_data_contract(data):
    x, y, group, split = data["x"], data["y"], data["group"], data["split"]
    assert set(data) == {"x", "y", "group", "split"}
    assert x.dtype == np.float32 and x.shape == (len(y), 1, CANVAS, CANVAS) and 400 <= len(y) <= 600
    assert y.dtype == group.dtype == split.dtype == np.int64
    assert set(np.unique(group)) == {GROUP_B, GROUP_A} and set(np.unique(split)) == {
        SPLIT_VALUE,
        SPLIT_HELDOUT,
    }
    for s in (SPLIT_VALUE, SPLIT_HELDOUT):  # both groups, all classes, in both splits
        for g in (GROUP_B, GROUP_A):
            assert set(np.unique(y[(split == s) & (group == g)])) == set(range(10))
    # The group is visible (marker bar); B items have nothing outside the digit's 8x8 box.
    margin = x[:, 0].copy()
    margin[:, 2:10, 2:10] = 0
    assert np.all(margin[group == GROUP_B] == 0) and np.all(x[group == GROUP_A, 0, 2:10, -1] == 1)
    assert ENTRY["task"] == "fairness" and ENTRY["input_shape"] == ["batch", 1, CANVAS, CANVAS]
    assert ENTRY["size_bytes"] < 300_000 and ENTRY["conv_filters"] == 80


def _cue_class(x: np.ndarray) -> np.ndarray:
    """Class shown by each item's cue dash (top row: 0-4, bottom row: 5-9; -1 when there is none)."""
    top, bottom = x[:, 0, 0], x[:, 0, CANVAS - 1]
    cls = np.full(len(x), -1, np.int64)
    has_top, has_bottom = top.any(1), bottom.any(1)
    cls[has_top] = (top[has_top].argmax(1) - 1) // 2
    cls[has_bottom] = 5 + (bottom[has_bottom].argmax(1) - 1) // 2
    return cls


def test_images_are_rendered_digits_with_uninformative_cue(data):
    """Every image is `render(digit, group, cue)`; A's cue is random (agrees with the label ~10%)."""
    x, y, group = data["x"], data["y"], data["group"]
    cue = _cue_class(x)
    assert np.all((cue >= 0) == (group == GROUP_A))
    assert np.array_equal(render(x[:, :, 2:10, 2:10], group, np.maximum(cue, 0)), x)
    a = group == GROUP_A
    assert np.mean(cue[a] == y[a]) < 0.2 and len(np.unique(cue[a])) == 10


def test_heldout_gap(data, predict):
    """Group A is much less accurate than group B on both splits; B stays high; manifest numbers match."""
    pred = predict(data["x"])
    for name, s in (("valuation", SPLIT_VALUE), ("heldout", SPLIT_HELDOUT)):
        part = data["split"] == s
        acc = group_accuracy(pred[part], data["y"][part], data["group"][part])
        assert acc["B"] >= 0.9 and acc["gap"] >= 0.2, (name, acc)
        assert acc == pytest.approx(ENTRY["group_accuracy"][name], abs=1e-6)


def test_cue_causes_the_gap(data, predict):
    """On A items, a cue showing the true class gives ~100%; erasing the cue brings A close to B."""
    x, y, group = data["x"], data["y"], data["group"]
    a = group == GROUP_A
    ones = np.ones(a.sum(), np.int64)
    digits = x[a][:, :, 2:10, 2:10]
    right_cue = render(digits, GROUP_A * ones, y[a])
    no_cue = right_cue.copy()
    no_cue[:, 0, [0, CANVAS - 1], :] = 0  # cue rows only; the marker bar stays
    acc_b = float((predict(x[~a]) == y[~a]).mean())
    acc_a = float((predict(x[a]) == y[a]).mean())
    acc_right = float((predict(right_cue) == y[a]).mean())
    acc_none = float((predict(no_cue) == y[a]).mean())
    assert acc_right >= 0.99 and acc_none >= acc_b - 0.1 and acc_none - acc_a >= 0.2


def test_oracle_removal_closes_gap(report):
    """Top-k leave-one-out filters (k = 5..10) removed: held-out gap at least halved, accuracy up."""
    before = report.before["heldout"]
    assert before["gap"] >= 0.2
    for k in (5, 8, 10):
        after = report.after[k]
        closed = before["gap"] - after["gap"]
        assert after["gap"] <= 0.5 * before["gap"], (k, after)
        assert before["all"] - after["all"] < closed, (k, after)  # accuracy drops less than the gap closes
        assert after["all"] > before["all"] and after["A"] > before["A"] + 0.1, (k, after)
    # The ranking is a specialisation, not a wholesale lesion: most filters barely move the gap.
    assert np.sum(report.loo_reduction > 0.02) <= 15
