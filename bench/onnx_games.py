"""ONNX fixture games for the benchmarks: `python bench/estimators.py --game bench.onnx_games:digits_cnn`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def digits_cnn_game():
    """The accuracy game of the PyTorch digits CNN (80 conv filters) on the shipped test split."""
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(ROOT / "models" / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(ROOT / "models" / "digits_test.npz") as npz:
        return OnnxGame(inst, npz["x"], npz["y"], metric="accuracy")


def digits_cnn():
    """The benchmark row: 128 images per permutation, truth from 300 permutations on all 540 items."""
    sys_path_bench()
    from estimators import BenchGame

    return BenchGame(
        "digits CNN (ONNX, accuracy)",
        digits_cnn_game,
        images=128,
        max_evals=60_000,
        truth_permutations=300,
        note="80 conv filters of models/digits_cnn_torch.onnx",
    )


def sys_path_bench() -> None:
    import sys

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
