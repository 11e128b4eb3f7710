"""bench/loo.py's interleaved measurement runs on a fixture and values every unit like the plain path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import loo
from onnxshap import instrument
from onnxshap.games.base import Game
from onnxshap.games.onnx_game import OnnxGame

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_loo_bench_times_both_sides_and_values_like_the_plain_path(fraction):
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_test.npz") as f:
        x, y = f["x"][:32], f["y"][:32]
    game = OnnxGame(inst, x, y)
    res = loo.measure(game, inst, x, fraction=fraction)
    assert res["loo"] > res["setup"] > 0 and res["forward"] > 0
    valued = np.flatnonzero(~np.isnan(res["values"]))
    assert len(valued) == (
        inst.n_units
        if fraction == 1
        else sum(max(2, int(np.ceil(0.3 * la.channels))) for la in inst.units.layers)
    )
    np.testing.assert_array_equal(res["values"][valued], Game.leave_one_out(game, valued))


def test_flops_floor_of_the_fixture():
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    total, floor = loo.flops_floor(inst, (1, 8, 8))
    assert total > 0 and 0 < floor < 1


def test_loo_bench_end_to_end_mode():
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_test.npz") as f:
        x, y = f["x"][:16], f["y"][:16]
    game = OnnxGame(inst, x, y)
    res = loo.end_to_end(game, inst, x)
    assert res["loo"] > 0 and res["forward"] > 0
    np.testing.assert_array_equal(res["values"], Game.leave_one_out(game))
