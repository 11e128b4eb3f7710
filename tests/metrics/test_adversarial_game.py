"""The adversarial game end to end: built-in attack > 50% success, top adversarial-Shapley filters removed
-> lower success on held-out adversarial examples than removing random filters, clean accuracy kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxshap import estimate, instrument
from onnxshap.attacks.examples import adversarial_dataset
from onnxshap.data import load_npz
from onnxshap.games.onnx_game import OnnxGame

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.slow
def test_removing_adversarial_shapley_filters_lowers_success(tmp_path):
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    data = load_npz(MODELS / "digits_test.npz")
    adv, attack = adversarial_dataset(inst, data, cache_dir=tmp_path)
    assert attack.success_rate > 0.5  # default eps and query budget
    again, _ = adversarial_dataset(inst, data, cache_dir=tmp_path)  # reused from the cache: same game
    np.testing.assert_array_equal(again.x, adv.x)

    valuation, held_out = adv.split(0.5, seed=0)
    _, clean_held_out = data.split(0.5, seed=0)
    game = OnnxGame(inst, valuation.inputs, valuation.labels, metric="adversarial")
    result = estimate(game, method="truncated", seed=0, n_permutations=16, progress=False)
    top = result.ranking()[:3]

    held = OnnxGame(inst, held_out.inputs, held_out.labels, metric="adversarial")
    clean = OnnxGame(inst, clean_held_out.inputs, clean_held_out.labels, metric="accuracy")
    keep = np.ones(inst.n_units, bool)
    keep[top] = False
    rng = np.random.default_rng(0)
    random_keeps = np.ones((10, inst.n_units), bool)
    for row in random_keeps:
        row[rng.choice(inst.n_units, 3, replace=False)] = False
    full, pruned = held(np.stack([np.ones(inst.n_units, bool), keep]))
    random_success = held(random_keeps).mean()
    assert pruned < full - 0.2 and pruned < random_success
    assert clean(keep[None])[0] > clean.v_all - 0.05
