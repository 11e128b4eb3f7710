"""Player tables: channels, layers, blocks:D and groups:FILE over a real unit table; lesions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxshap import instrument
from onnxshap.errors import DataError
from onnxshap.players import PlayerTable, build_players, check_spec

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def table():
    return instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu").units  # 16 + 32 + 32 filters


def test_layers_and_blocks(table) -> None:
    layers = build_players("layers", table)
    assert layers.names == ["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"]
    assert [m.size for m in layers.members] == [16, 32, 32] and layers.grouped
    blocks = build_players("blocks:10", table)
    assert blocks.names[:3] == ["/conv1/Conv:0-9", "/conv1/Conv:10-15", "/conv2/Conv:0-9"]
    assert blocks.n_players == 2 + 4 + 4 and blocks.members[1].tolist() == list(range(10, 16))
    assert sum(m.size for m in blocks.members) == 80 and not blocks.fixed_present().size
    channels = build_players("channels", table)
    assert channels.is_units and channels.names == table.unit_ids()


def test_group_files_json_and_csv(table, tmp_path) -> None:
    doc = {"/conv1/Conv": "early", "/conv2/Conv:0-3": "mid", "/conv2/Conv:31": "mid", "/conv3/Conv:5": "late"}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    players = build_players(f"groups:{path}", table)
    assert players.names == ["early", "mid", "late"]
    assert players.members[1].tolist() == [16, 17, 18, 19, 47]
    assert players.layers == ["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"]
    assert players.fixed_present().size == 80 - 16 - 5 - 1  # unlisted units stay present
    inverted = tmp_path / "inv.json"
    inverted.write_text(json.dumps({"a": ["/conv1/Conv:0", "/conv3/Conv:0"]}))
    mixed = build_players(f"groups:{inverted}", table)
    assert mixed.layers == [""] and mixed.members[0].tolist() == [0, 48]
    csv = tmp_path / "g.csv"
    csv.write_text("unit,group\n/conv1/Conv:0-7,x\n/conv1/Conv:8-15,y\n")
    assert [m.tolist() for m in build_players(f"groups:{csv}", table).members] == [
        list(range(8)),
        list(range(8, 16)),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"/conv9/Conv": "x"}, "neither a unit layer"),
        ({"/conv1/Conv:16": "x"}, "channels 0-15"),
        ({"/conv1/Conv": "x", "/conv1/Conv:3": "y"}, "is in group 'x' and in 'y'"),
        ([1, 2], "non-empty JSON object"),
    ],
)
def test_bad_group_files(table, tmp_path, content, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        build_players(f"groups:{path}", table)


def test_bad_specs(tmp_path) -> None:
    for spec, message in (
        ("heads", "unknown --players"),
        ("blocks:0", "D >= 1"),
        ("groups:nope.json", "not found"),
    ):
        with pytest.raises(DataError, match=message):
            check_spec(spec)


def test_lesions_and_round_trip(table, tmp_path) -> None:
    layers = build_players("layers", table)
    lesioned = layers.lesioned_by(["/conv3/Conv", "/conv2/Conv:0-1"], table)
    assert lesioned.names == ["/conv1/Conv", "/conv2/Conv"]
    assert lesioned.members[1].tolist() == list(range(18, 48))
    assert lesioned.lesioned.tolist() == [16, 17, *range(48, 80)]
    keep = lesioned.unit_keep([0])
    assert keep.sum() == 30 and keep[18:48].all()
    coal = lesioned.unit_coalitions(np.array([[True, False]]))[0]
    assert coal[:16].all() and not coal[16:].any()
    with pytest.raises(DataError, match="--lesion"):
        layers.lesioned_by(["nothing"], table)
    with pytest.raises(DataError, match="every player"):
        layers.lesioned_by(["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"], table)
    path = lesioned.save(tmp_path / "players.json", table)
    back = PlayerTable.load(path, table)
    assert back.names == lesioned.names and back.lesion == ["/conv3/Conv", "/conv2/Conv:0-1"]
    assert all(np.array_equal(a, b) for a, b in zip(back.members, lesioned.members, strict=True))
    np.testing.assert_array_equal(back.lesioned, lesioned.lesioned)
    channels = build_players("channels", table).lesioned_by(["/conv1/Conv:3"], table)
    back = PlayerTable.load(channels.save(tmp_path / "c.json", table), table)
    assert back.n_players == 79 and "/conv1/Conv:3" not in back.names and not back.is_units
    assert PlayerTable.load(tmp_path / "missing.json", table).is_units  # runs without players.json
