"""Pairwise interactions: exact = msapy's three-game definition = shapiq's SII; sampled with valid intervals."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap import estimate
from onnxshap.errors import DataError
from onnxshap.games import InteractionGame, WeightedVotingGame
from onnxshap.games.grouped import LesionedGame, merged_pair
from onnxshap.interactions import pair_interactions


def msa_2d(game, i: int, j: int) -> float:
    """msapy's interaction_2d with exact Shapley values: gamma_ij - gamma_i (j lesioned) - gamma_j (i lesioned)."""
    merged, at = merged_pair(game, i, j)
    gamma_ij = estimate(merged, "exact", progress=False).values[at]
    without_j = LesionedGame(game, [j])
    gamma_i = estimate(without_j, "exact", progress=False).values[list(without_j.remaining).index(i)]
    without_i = LesionedGame(game, [i])
    gamma_j = estimate(without_i, "exact", progress=False).values[list(without_i.remaining).index(j)]
    return float(gamma_ij - gamma_i - gamma_j)


@pytest.fixture(scope="module")
def voting() -> WeightedVotingGame:
    return WeightedVotingGame(np.array([4, 3, 3, 2, 2, 1, 1]), quota=9)  # not constant-sum: SII != 0


def test_exact_is_msapy_two_dimensional_msa(voting) -> None:
    players = [0, 1, 3, 6]
    res = pair_interactions(voting, players, method="exact")
    want = [msa_2d(voting, players[a], players[b]) for a, b in res.pairs]
    np.testing.assert_allclose(res.values, want, atol=1e-9, rtol=0)
    assert np.abs(res.values).max() > 0.04  # a game with real interactions
    np.testing.assert_array_equal(res.ci_low, res.values)
    m = res.matrix()
    assert m.shape == (4, 4) and m[1, 0] == m[0, 1] == res.values[0]


def test_exact_is_shapiq_sii(voting) -> None:
    shapiq = pytest.importorskip("shapiq")
    from onnxshap.games import to_shapiq

    players = list(range(7))
    res = pair_interactions(voting, players, method="exact")
    sii = shapiq.ExactComputer(to_shapiq(voting), n_players=7)("SII", order=2)
    np.testing.assert_allclose(res.values, [sii[(a, b)] for a, b in res.pairs], atol=1e-9, rtol=0)


def test_sampled_on_a_pairwise_game_is_exact() -> None:
    """In an additive-plus-pairs game every sample is the pair's weight: the estimate is exact."""
    game = InteractionGame(np.zeros(6), np.array([[0, 1], [2, 4]]), np.array([0.7, -0.4]), constant=0.1)
    res = pair_interactions(game, [0, 1, 2, 4], n_permutations=5, seed=3)
    want = {(0, 1): 0.7, (2, 3): -0.4}
    for (a, b), v in zip(res.pairs, res.values, strict=True):
        assert v == pytest.approx(want.get((a, b), 0.0), abs=1e-12)
    assert "probability >= 0.95" in res.metadata["guarantee"]


def test_sampled_intervals_cover_exact(voting) -> None:
    players = [0, 1, 2, 5]
    exact = pair_interactions(voting, players, method="exact").values
    res = pair_interactions(voting, players, n_permutations=400, seed=1)
    assert np.all(res.ci_low <= exact) and np.all(exact <= res.ci_high)
    assert np.abs(res.values - exact).max() < 0.08
    assert res.evaluations < 400 * 4 * len(res.pairs)  # shared coalitions are evaluated once


def test_refusals(voting) -> None:
    with pytest.raises(DataError, match="two distinct"):
        pair_interactions(voting, [1, 1])
    with pytest.raises(DataError, match="unknown interaction method"):
        pair_interactions(voting, [0, 1], method="kernel")
