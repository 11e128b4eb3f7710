"""tmab's leave-one-out control variate: exact where marginals track leave-one-out, unbiased enough to
converge to the Shapley value, resumable, and run on a real ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxshap.estimators import ParameterError, estimate
from onnxshap.estimators.loo_control import PositionSums, position_edges
from onnxshap.games import InteractionGame
from tests.estimators.test_est_checkpoint import assert_same_result

ROOT = Path(__file__).resolve().parents[2]


def _walks(n: int, walks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(walks)])


def test_a_marginal_that_is_leave_one_out_early_and_zero_late_is_estimated_exactly() -> None:
    # marginal = L_i while fewer than T units are removed, 0 after: Shapley value L_i T / n. The raw mean
    # depends on how often each unit landed early; the control-variate estimate does not.
    n, walks = 100, 7
    edges = position_edges(n)
    t = int(edges[6])
    loo = np.random.default_rng(1).uniform(0.1, 1.0, n)
    sums = PositionSums(n)
    orders = _walks(n, walks, 2)
    for order in orders:
        position = np.empty(n, dtype=np.intp)
        position[order] = np.arange(n)
        sums.add(order[None], (loo * (position < t))[None], np.ones(n, dtype=bool))
    raw = sums.sum_x.sum(axis=1) / walks
    est = sums.estimate(raw, np.full(n, walks), loo)
    np.testing.assert_allclose(est, loo * t / n, rtol=1e-12)
    assert np.abs(raw - loo * t / n).max() > 0.05  # the raw mean is far off on some unit


def test_merging_chunks_equals_adding_in_sequence() -> None:
    n = 30
    rng = np.random.default_rng(0)
    orders, x = _walks(n, 6, 3), rng.normal(size=(6, n))
    mask = rng.random(n) < 0.7
    whole, a, b = PositionSums(n), PositionSums(n), PositionSums(n)
    for r in range(0, 6, 2):  # groups of 2 walks per sample
        whole.add(orders[r : r + 2], x[r : r + 2], mask)
        (a if r < 4 else b).add(orders[r : r + 2], x[r : r + 2], mask)
    a.merge(b)
    for name in ("sum_x", "walks", "weight"):
        np.testing.assert_array_equal(getattr(a, name), getattr(whole, name))
    assert whole.walks[~mask].sum() == 0 and whole.weight.sum() == pytest.approx(3 * mask.sum())


def test_tmab_with_loo_control_converges_to_the_shapley_value_and_says_what_it_did() -> None:
    game = InteractionGame.random(8, 10, seed=4)
    truth = game.shapley_values()
    res = estimate(
        game, "tmab", top_k=3, seed=0, loo_control=True, tolerance=None, n_permutations=3000, progress=False
    )
    np.testing.assert_allclose(res.values, truth, atol=0.03 * np.abs(truth).max())
    md = res.metadata["loo_control"]
    np.testing.assert_allclose(md["leave_one_out"], estimate(game, "loo", progress=False).values)
    assert len(md["beta_by_position_bin"]) == len(md["position_bin_edges"]) - 1
    assert "heuristic" in md["statement"] and res.metadata["guarantee"] == "simultaneous"
    plain = estimate(game, "tmab", top_k=3, seed=0, tolerance=None, n_permutations=3000, progress=False)
    assert res.evaluations == plain.evaluations + 8  # one leave-one-out evaluation per unit
    assert "loo_control" not in plain.metadata


def test_loo_control_resumes_bit_for_bit(tmp_path: Path) -> None:
    game = InteractionGame.random(10, 8, seed=1)
    kw = {"top_k": 3, "seed": 2, "loo_control": True, "progress": False}
    estimate(game, "tmab", n_permutations=20, checkpoint_dir=tmp_path, **kw)
    resumed = estimate(game, "tmab", n_permutations=60, checkpoint_dir=tmp_path, resume=True, **kw)
    straight = estimate(game, "tmab", n_permutations=60, **kw)
    assert_same_result(resumed, straight, same_rounds=False)


def test_loo_control_is_for_scalar_games() -> None:
    from onnxshap.games import FunctionGame

    game = FunctionGame(
        lambda c: np.stack([c.sum(axis=1), c[:, 0]], axis=1).astype(float), 4, value_shape=(2,)
    )
    with pytest.raises(ParameterError, match="scalar games only"):
        estimate(game, "tmab", top_k=2, loo_control=True, progress=False)
    with pytest.raises(ParameterError, match="per-unit rule ranks by the raw means"):
        estimate(
            InteractionGame.random(6, 4, seed=0), "tmab", top_k=2, loo_control=True, guarantee="per-unit"
        )


def test_loo_control_on_the_digits_cnn_uses_the_models_leave_one_out() -> None:
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(ROOT / "models" / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(ROOT / "models" / "digits_test.npz") as npz:
        game = OnnxGame(inst, npz["x"][:128], npz["y"][:128], metric="accuracy")
    res = estimate(game, "tmab", top_k=5, seed=0, loo_control=True, n_permutations=16, progress=False)
    loo = np.asarray(res.metadata["loo_control"]["leave_one_out"])
    np.testing.assert_allclose(loo, estimate(game, "loo", progress=False).values)
    assert np.isfinite(res.values).all() and len(set(res.top_k.tolist())) == 5
    # the values sit inside the (simultaneous) intervals, and differ from the raw means
    assert ((res.ci_low <= res.values) & (res.values <= res.ci_high)).all()
    raw = estimate(game, "tmab", top_k=5, seed=0, n_permutations=16, progress=False)
    assert not np.allclose(res.values, raw.values)
