"""Leave-one-out of grouped players (layers, blocks, groups spanning layers, with a lesion) on per-layer cuts:
each group valued from its earliest layer on equals the whole model evaluated without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxshap import instrument
from onnxshap.games.grouped import GroupedGame
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.players import build_players

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def game() -> OnnxGame:
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_test.npz") as npz:
        x, y = npz["x"][:120], npz["y"][:120]
    return OnnxGame(inst, x, y, metric="loss")  # loss: every removal moves the value


def _spanning_groups(game: OnnxGame, tmp_path: Path) -> str:
    """Two groups that each take channels of two layers, the rest of the units fixed on."""
    first, second = game.inst.units.layers[0].layer, game.inst.units.layers[1].layer
    path = tmp_path / "groups.json"
    path.write_text(
        json.dumps({"a": [f"{first}:0-3", f"{second}:0-7"], "b": [f"{first}:4-5", f"{second}:20"]})
    )
    return f"groups:{path}"


@pytest.mark.parametrize("spec", ["layers", "blocks:8", "spanning"])
@pytest.mark.parametrize("lesion", [False, True])
def test_grouped_leave_one_out_on_cuts_equals_the_whole_model(game, tmp_path, spec, lesion) -> None:
    table = game.inst.units
    players = build_players(_spanning_groups(game, tmp_path) if spec == "spanning" else spec, table)
    if lesion:
        last = table.layers[-1].layer
        players = players.lesioned_by([f"{last}:0"], table) if spec != "layers" else players
    grouped = players.wrap(game)
    assert isinstance(grouped, GroupedGame)
    cut = grouped.leave_one_out()
    plain = np.asarray(grouped.v_all) - grouped(np.logical_not(np.eye(grouped.n_players, dtype=bool)))
    np.testing.assert_allclose(cut, plain, rtol=1e-6, atol=1e-9)
    assert np.abs(cut).max() > 0


def test_grouped_leave_one_out_uses_the_cut(game, monkeypatch) -> None:
    """No evaluation of the whole instrumented model: every group is valued on a cut graph."""
    grouped = build_players("blocks:4", game.inst.units).wrap(game)
    _ = grouped.v_all
    calls = []
    monkeypatch.setattr(game, "_evaluate", lambda coal: calls.append(len(coal)))  # the coalition path
    values = grouped.leave_one_out()
    assert len(values) == grouped.n_players and not calls
