"""The planted-bias fixture: removing the top fairness-Shapley filters closes the held-out gap while the
accuracy drops by less than the gap closes (here it even rises)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxshap import estimate, instrument
from onnxshap.games.onnx_game import OnnxGame

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.slow
def test_fairness_shapley_repairs_planted_bias():
    inst = instrument(MODELS / "digits_bias_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_bias.npz") as npz:
        x, y, group, split = npz["x"], npz["y"], npz["group"], npz["split"]
    val, held = split == 0, split == 1
    game = OnnxGame(inst, x[val], y[val], group[val], metric="fairness")
    assert game.metric.advantaged == "0" and game.v_all > 0.25  # group B (0) ahead of A (1)
    result = estimate(game, method="truncated", seed=0, n_permutations=12, progress=False)
    keep = np.ones(inst.n_units, bool)
    keep[result.ranking()[:5]] = False
    gap = game.with_data(x[held], y[held], group[held])
    accuracy = OnnxGame(inst, x[held], y[held], metric="accuracy")
    gap_before, gap_after = gap(np.stack([np.ones(inst.n_units, bool), keep]))
    acc_before, acc_after = accuracy(np.stack([np.ones(inst.n_units, bool), keep]))
    assert gap_after < gap_before / 2
    assert acc_before - acc_after < gap_before - gap_after
