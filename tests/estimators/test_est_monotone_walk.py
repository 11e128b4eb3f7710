"""Walks on monotone games skip flat stretches: the same marginals as the linear walk, fewer evaluations."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.estimators import estimate
from onnxshap.estimators.walk import walk_round
from onnxshap.games import FewHubsGame, FunctionGame


def _both(game, **kw):
    game.monotone = True
    skipping = walk_round(game, range(6), seed=1, **kw)
    game.monotone = False
    linear = walk_round(game, range(6), seed=1, **kw)
    game.monotone = True
    return skipping, linear


@pytest.mark.parametrize("per_group", [False, True])
@pytest.mark.parametrize("truncation", [0.2, 0.0, None])
@pytest.mark.parametrize("eliminated", [False, True])
def test_skipping_walk_gives_the_linear_walks_marginals(per_group, truncation, eliminated) -> None:
    game = FewHubsGame.make(
        n_players=300, n_hubs=8, seed=3, chance=0.0, n_groups=3 if per_group else 1, per_group=per_group
    )
    active = np.random.default_rng(0).random(300) < 0.3 if eliminated else None
    if active is None and truncation is None:
        active = np.ones(300, bool)  # the block path is only taken without both
    kw = dict(images=100, active=active, truncation=truncation, patience=2, check_every=4)
    for rot in ({"rotations": 3, "rotated_walks": 6}, {}):
        skipping, linear = _both(game, **kw, **rot)
        assert np.array_equal(skipping.marginals, linear.marginals)
        assert np.array_equal(skipping.sampled, linear.sampled)
        assert np.array_equal(skipping.orders, linear.orders)
        assert skipping.evaluations < linear.evaluations


def test_skipping_walk_evaluates_each_change_and_gallops_over_the_rest() -> None:
    # One player carries the whole value: a walk needs about 2 log2(n) evaluations, not n.
    n = 1024
    game = FunctionGame(lambda c: c[:, 7].astype(float), n, value_range=1.0)
    game.monotone = True
    skipping = walk_round(game, range(4), seed=0, active=np.ones(n, bool))
    assert skipping.evaluations <= 4 * 2 * 2 * np.log2(n)
    expected = np.zeros((4, n))
    expected[:, 7] = 1.0
    assert np.array_equal(skipping.marginals, expected)
    game.monotone = False
    assert walk_round(game, range(4), seed=0, active=np.ones(n, bool)).evaluations == 4 * (n - 1)


def test_tmab_on_a_monotone_game_is_the_same_run_with_fewer_evaluations() -> None:
    game = FewHubsGame.make(n_players=120, n_hubs=6, seed=2, chance=0.0)
    runs = {}
    for monotone in (True, False):
        game.monotone = monotone
        # the same marginal range for both: only the walk differs
        runs[monotone] = estimate(
            game, "tmab", top_k=6, seed=5, n_permutations=24, progress=False, value_range=1.0
        )
    game.monotone = True
    a, b = runs[True], runs[False]
    assert np.array_equal(a.values, b.values)
    assert a.evaluations < b.evaluations
