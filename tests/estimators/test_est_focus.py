"""tmab's focused position strata: unbiased per stratum on games with known values, precise on the
contenders of a collapsing game, resumable, refused where it cannot apply, and run on a real ONNX model."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from onnxshap.estimators import ParameterError, estimate
from onnxshap.estimators.focus import FocusStrata, TailSums, default_depth
from onnxshap.games import FewHubsGame, FunctionGame, InteractionGame
from tests.estimators.test_est_checkpoint import assert_same_result

ROOT = Path(__file__).resolve().parents[2]


def _position_means(game, n: int) -> np.ndarray:
    """m[i, p]: unit i's mean marginal over every removed set of size p (exact, by enumeration)."""
    m = np.zeros((n, n))
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for p in range(n):
            sets = list(combinations(others, p))
            with_i = np.ones((len(sets), n), dtype=bool)
            for r, removed in enumerate(sets):
                with_i[r, list(removed)] = False
            without = with_i.copy()
            without[:, i] = False
            m[i, p] = float(np.mean(np.asarray(game(with_i)) - np.asarray(game(without))))
    return m


def test_strata_estimate_each_units_share_of_early_positions_without_bias() -> None:
    n, depth = 8, 5
    game = InteractionGame.random(n, 8, seed=3)
    m = _position_means(game, n)
    np.testing.assert_allclose(m.mean(axis=1), game.shapley_values(), atol=1e-9)  # the decomposition
    strata = FocusStrata(n, depth)
    before = game.evaluations
    evaluations = strata.run(game, np.arange(n), seed=0, draws=4000)
    assert strata.draws == 4000 and evaluations == game.evaluations - before
    # one evaluation with R removed, one more per unit outside R: a unit is outside R with odds 1 - p / n
    assert evaluations == 4000 + strata.count.sum()
    tail = m[:, depth:].sum(axis=1) / n
    values, stderr = strata.estimate(m[:, 0], tail, np.zeros(n))
    assert strata.focused().all() and np.isfinite(stderr).all()
    z = np.abs(values - game.shapley_values()) / stderr
    assert z.max() < 4.5, z  # the error is what its standard error says
    # strata of one position each here, every one drawn 1000 times (draw d uses stratum d mod S)
    q = 1.0 - strata.edges[:-1] / n
    z_count = np.abs(strata.count - 1000 * q) / np.sqrt(1000 * q * (1 - q))
    assert list(strata.edges) == [1, 2, 3, 4, 5] and z_count.max() < 5, z_count


def test_tail_sums_weight_a_group_of_walks_as_one_sample_and_merge() -> None:
    n, depth = 10, 4
    rng = np.random.default_rng(0)
    orders = np.stack([rng.permutation(n) for _ in range(6)])
    x = rng.normal(size=(6, n))
    mask = rng.random(n) < 0.8
    whole, a, b = TailSums(n, depth), TailSums(n, depth), TailSums(n, depth)
    for r in range(0, 6, 3):
        whole.add(orders[r : r + 3], x[r : r + 3], mask)
        (a if r == 0 else b).add(orders[r : r + 3], x[r : r + 3], mask)
    a.merge(b)
    np.testing.assert_allclose(a.sum_x, whole.sum_x, rtol=1e-12, atol=1e-15)
    position = np.argsort(orders, axis=1)
    expect = (x * (position >= depth)).sum(axis=0) / 3
    np.testing.assert_allclose(whole.sum_x, np.where(mask, expect, 0.0))


def _hub_errors(focus: int, seed: int) -> tuple[float, dict]:
    # accuracy falls to chance once ~10% of the weight is gone: the value sits in early positions
    game = FewHubsGame.make(n_players=400, n_hubs=10, seed=seed, quota_range=(0.9, 0.965))
    truth = game.shapley_values()
    kw = {"focus": focus} if focus else {}
    res = estimate(game, "tmab", top_k=10, seed=seed, max_evals=20_000, progress=False, **kw)
    hubs = np.argsort(-truth)[:10]
    return float(np.abs(res.values - truth)[hubs].mean()), res.metadata


def test_focus_values_the_hubs_of_a_collapsing_game_more_precisely() -> None:
    plain = [_hub_errors(0, s)[0] for s in range(3)]
    focused = [_hub_errors(20, s) for s in range(3)]
    assert np.mean([e for e, _ in focused]) < 0.6 * np.mean(plain), (plain, focused)
    md = focused[0][1]["focus"]
    assert md["draws"] > 0 and len(md["contenders"]) == 20 and md["depth"] == default_depth(400)
    assert len(set(md["focused_units"]) & set(md["contenders"])) >= 10
    assert "heuristic" in md["statement"] and focused[0][1]["guarantee"] == "simultaneous"
    # the draws had about their share of the evaluations
    assert 0.3 < md["evaluations"] / 20_000 < 0.55


def test_focus_resumes_bit_for_bit(tmp_path: Path) -> None:
    game = FewHubsGame.make(n_players=120, n_hubs=6, seed=1)
    kw = {"top_k": 6, "seed": 2, "focus": 8, "permutations_per_round": 12, "progress": False}
    estimate(game, "tmab", n_permutations=24, checkpoint_dir=tmp_path, **kw)
    resumed = estimate(game, "tmab", n_permutations=72, checkpoint_dir=tmp_path, resume=True, **kw)
    straight = estimate(game, "tmab", n_permutations=72, **kw)
    assert straight.metadata["focus"]["draws"] > 0
    assert_same_result(resumed, straight, same_rounds=False)
    assert resumed.metadata["focus"] == straight.metadata["focus"]


def test_focus_is_refused_where_it_cannot_apply() -> None:
    game = FunctionGame(
        lambda c: np.stack([c.sum(axis=1), c[:, 0]], axis=1).astype(float), 4, value_shape=(2,)
    )
    with pytest.raises(ParameterError, match="scalar games only"):
        estimate(game, "tmab", top_k=2, focus=2, progress=False)
    with pytest.raises(ParameterError, match="per-unit rule ranks by the raw means"):
        estimate(InteractionGame.random(6, 4, seed=0), "tmab", top_k=2, focus=2, guarantee="per-unit")
    with pytest.raises(ParameterError, match="focus_share"):
        estimate(InteractionGame.random(6, 4, seed=0), "tmab", top_k=2, focus=2, focus_share=1.0)


def test_focus_on_the_digits_cnn_spends_its_share_and_keeps_values_in_the_intervals() -> None:
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(ROOT / "models" / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(ROOT / "models" / "digits_test.npz") as npz:
        game = OnnxGame(inst, npz["x"][:128], npz["y"][:128], metric="accuracy")
    res = estimate(game, "tmab", top_k=5, seed=0, focus=6, max_evals=1500, progress=False)
    md = res.metadata["focus"]
    assert md["draws"] > 0 and len(md["focused_units"]) >= 1
    assert res.evaluations >= game.n_players + md["evaluations"]  # leave-one-out, draws, walks
    assert np.isfinite(res.values).all() and len(set(res.top_k.tolist())) == 5
    assert ((res.ci_low <= res.values) & (res.values <= res.ci_high)).all()
    raw = estimate(game, "tmab", top_k=5, seed=0, max_evals=1500, progress=False)
    assert not np.allclose(res.values, raw.values)
