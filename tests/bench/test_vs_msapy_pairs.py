"""msapy's pair= and lesioned= equal onnxshap's merged-pair and lesioned games on the same permutations
(bench/vs_msapy.py same_permutations; needs msapy, not torch: msapy's objective calls the ONNX game)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("msapy")

from bench import vs_msapy as vm
from onnxshap import instrument
from onnxshap.games.grouped import GroupedGame
from onnxshap.games.onnx_game import OnnxGame

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_pair_and_lesioned_equal_msapy_on_the_same_permutations() -> None:
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    data = np.load(MODELS / "digits_test.npz")
    unit_game = OnnxGame(inst, data["x"][:128], data["y"][:128])
    # 10 players: blocks of 8 filters, an ONNX game small enough for msapy's serial walk
    game = GroupedGame(unit_game, [range(a, a + 8) for a in range(0, 80, 8)])
    got = vm.same_permutations(game, 2, 7, n_permutations=6, seed=0)
    assert got["lesioned_onnxshap"] == pytest.approx(got["lesioned_msapy"], abs=1e-12)
    assert got["pair_onnxshap"] == pytest.approx(got["pair_msapy"], abs=1e-12)
    assert got["pair_onnxshap"] != 0.0 and got["lesioned_onnxshap"] != got["pair_onnxshap"]
