"""The shapiq adapters (skipped when shapiq is not installed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from onnxshap.estimators import estimate
from onnxshap.games import InteractionGame, to_shapiq
from onnxshap.games.synthetic import FewHubsGame


def test_missing_shapiq_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shapiq", None)
    with pytest.raises(ImportError, match=r"install onnxshap\[shapiq\]"):
        to_shapiq(InteractionGame.random(4, 2))


def test_shapiq_approximators_run_our_games() -> None:
    shapiq = pytest.importorskip("shapiq")
    game = InteractionGame.random(7, 8, seed=3)
    wrapped = to_shapiq(game)
    assert isinstance(wrapped, shapiq.Game)
    exact = shapiq.ExactComputer(wrapped, n_players=7)("SV", 1)
    values = np.array([exact[(i,)] for i in range(7)])
    np.testing.assert_allclose(values, game.shapley_values(), atol=1e-9)
    approx = shapiq.PermutationSamplingSV(n=7, random_state=0).approximate(3000, wrapped)
    values = np.array([approx[(i,)] for i in range(7)])
    np.testing.assert_allclose(values, game.shapley_values(), atol=0.5)


def test_shapiq_games_run_our_estimators() -> None:
    pytest.importorskip("shapiq")
    from onnxshap.games import from_shapiq

    game = InteractionGame.random(6, 5, seed=4)
    back = from_shapiq(to_shapiq(game))
    res = estimate(back, "exact", progress=False)
    np.testing.assert_allclose(res.values, game.shapley_values(), atol=1e-9)


def test_vector_games_need_a_reduction() -> None:
    pytest.importorskip("shapiq")
    game = FewHubsGame.make(n_players=6, n_hubs=2, n_items=30, n_groups=3, seed=1, per_group=True)
    with pytest.raises(ValueError, match="reduce"):
        to_shapiq(game)
    wrapped = to_shapiq(game, reduce=lambda v: v[:, 1])
    assert wrapped(np.ones((1, 6), bool))[0] == pytest.approx(game.v_all[1] - game.v_empty[1])
