"""Smoke test of bench/vs_msapy.py: the torch network is the ONNX one and both sides value the same game."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch

pytest.importorskip("torch")
pytest.importorskip("msapy")
pytest.importorskip("onnxruntime")

from bench import vs_msapy as vm  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    import torch

    torch.set_num_threads(2)
    with np.load(vm.DATA) as npz:
        return np.ascontiguousarray(npz["x"][:32]), npz["y"][:32]


def test_torch_equals_onnx(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = data
    assert vm.max_logit_diff(vm.load_torch_from_onnx(), x) < 1e-4


def test_same_game_and_shapes(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    game = vm.make_game(x, y)
    elements = vm.element_names(game)
    assert len(elements) == game.n_players == 80
    assert elements[0] == "conv1:0" and elements[-1] == "conv3:31"
    objective = vm.HookedAccuracy(vm.load_torch_from_onnx(), x, y, elements)
    # the hooked torch model and the instrumented ONNX model give the same v(S)
    rng = np.random.default_rng(0)
    coalitions = rng.random((6, 80)) < np.array([[1.0], [0.0], [0.9], [0.7], [0.5], [0.3]])
    onnx_values = game(coalitions)
    for keep, want in zip(coalitions, onnx_values, strict=True):
        lesioned = tuple(e for e, k in zip(elements, keep, strict=True) if not k)
        assert objective(lesioned) == pytest.approx(float(want), abs=1e-9)

    a = vm.run_msapy(objective, 2, seed=0)
    objective.remove()
    assert a.table.shape == (2, 80)
    assert a.calls == 1 + 2 * 80
    np.testing.assert_allclose(a.table.sum(axis=1), float(game.v_all - game.v_empty), atol=1e-9)

    b, wall, _ = vm.run_permutation(x, y, 2, seed=0)
    assert b.values.shape == (80,) and wall > 0
    within, pearson, spearman = vm.agreement(a, b)
    assert 0.0 <= within <= 1.0 and np.isfinite(pearson) and np.isfinite(spearman)


def test_stepped_tmab_is_estimate(data: tuple[np.ndarray, np.ndarray]) -> None:
    """The bench steps tmab round by round; its state after each round is what estimate() returns."""
    from onnxshap import estimate
    from onnxshap.estimators.tmab import TMABEstimator

    x, y = data
    game = vm.make_game(x, y)
    est = TMABEstimator(game, top_k=vm.TOP_K, seed=0, n_permutations=16)
    ref_top = vm.top(np.arange(80.0))
    traj = vm.walk(est, ref_top, max_evals=10**6)
    # rotation groups of 3 walks: a budget of 16 permutations ends on the group that crosses it
    assert traj.stop in ("n_permutations", "reached") and len(traj.permutations) == 1
    assert 16 <= traj.permutations[0] < 16 + est.params["rotations"]
    res = estimate(game, method="tmab", top_k=vm.TOP_K, seed=0, n_permutations=16, progress=False)
    assert res.evaluations == traj.evaluations[-1]
    np.testing.assert_array_equal(res.values, est.estimates()[0])


def test_recall_helpers() -> None:
    ref_top = vm.top(np.arange(20.0))
    assert vm.recall(np.arange(20.0), ref_top) == 1.0
    assert vm.recall(np.arange(20.0)[::-1], ref_top) == 0.0
    marginals = np.tile(np.arange(20.0), (3, 1))
    np.testing.assert_array_equal(vm.running_recalls(marginals, ref_top), [1.0, 1.0, 1.0])
