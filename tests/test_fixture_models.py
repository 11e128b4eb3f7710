"""The committed digits fixtures (PyTorch and Keras exports) instrument and keep their outputs and accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxshap import instrument
from onnxshap.runtime.verify import check_invariant

MODELS = Path(__file__).resolve().parents[1] / "models"
FIXTURES = json.loads((MODELS / "fixtures.json").read_text())


def _data(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    with np.load(MODELS / entry["data"]) as npz:
        return npz["x"], npz["y"]


@pytest.mark.parametrize("entry", FIXTURES, ids=[f["name"] for f in FIXTURES])
@pytest.mark.parametrize("units", ["conv", "conv,dense"])
def test_fixture_invariant_and_accuracy(entry, units):
    x, y = _data(entry)
    inst = instrument(MODELS / entry["file"], units=units, optimize=False)
    assert inst.n_units == entry["conv_filters"] or units != "conv"
    report = check_invariant(inst, x[:64])
    assert report.max_abs_diff == 0.0 and report.changed_when_removed
    logits = inst.evaluate(np.ones((1, inst.n_units), bool), x)[inst.evaluator.output_names[0]][0]
    assert np.isclose((logits.argmax(1) == y).mean(), entry["test_accuracy"], atol=1e-3)


@pytest.mark.parametrize("entry", FIXTURES, ids=[f["name"] for f in FIXTURES])
def test_fixture_invariant_with_optimisations_on(entry):
    """With ORT's fusions on (the default for runs) the figure is within 1e-5 of the output scale."""
    x, _ = _data(entry)
    inst = instrument(MODELS / entry["file"])
    report = check_invariant(inst, x[:64])
    assert report.relative_diff <= 1e-5 and report.changed_when_removed


def test_fixture_kinds_present():
    by_name = {f["name"]: f for f in FIXTURES}
    resnet = instrument(MODELS / by_name["digits_resnet_torch"]["file"])
    assert any("BatchNormalization" in layer.chain for layer in resnet.units.layers)
    cnn = instrument(MODELS / by_name["digits_cnn_torch"]["file"], units="conv,dense")
    assert {layer.kind for layer in cnn.units.layers} == {"conv", "dense"}
    keras = by_name["digits_cnn_keras"]
    assert keras["input_layout"] == "NHWC"


def test_removing_filters_hurts_accuracy():
    """Sanity for the whole stack: the top-1 accuracy falls when half the conv filters are removed."""
    entry = next(f for f in FIXTURES if f["name"] == "digits_cnn_torch")
    x, y = _data(entry)
    inst = instrument(MODELS / entry["file"])
    rng = np.random.default_rng(0)
    coalitions = np.ones((3, inst.n_units), bool)
    coalitions[1] = rng.random(inst.n_units) > 0.5
    coalitions[2] = False
    logits = inst.evaluate(coalitions, x)[inst.evaluator.output_names[0]]
    acc = (logits.argmax(-1) == y).mean(axis=1)
    assert acc[0] > 0.9 and acc[1] < acc[0] and acc[2] < 0.2
