"""Who the players are: single units (channels), whole layers, blocks of channels, or groups from a file.

A player table maps each player to its member units (indices into the unit table) and records the units
lesioned for good (``--lesion``). Units that belong to no player and are not lesioned stay present in every
coalition. The table is saved as ``players.json`` in the run folder; reading it never runs code.

Specs: ``channels`` (one player per unit, the default), ``layers`` (one per unit layer), ``blocks:D``
(contiguous blocks of D channels inside each layer, the last block of a layer smaller when D does not divide
its channels), ``groups:FILE`` (a JSON object ``{"UNIT": "GROUP", ...}`` or ``{"GROUP": ["UNIT", ...]}``, or
a CSV ``unit,group``; UNIT is a unit id ``LAYER:C``, a range ``LAYER:A-B`` (inclusive) or a whole ``LAYER``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.errors import DataError
from onnxshap.graph.units import UnitTable

PLAYER_SPECS = ("channels", "layers", "blocks:D", "groups:FILE")
PLAYERS_VERSION = 1
MIXED_LAYERS = ""  # layer column of a player whose members span several layers


def check_spec(spec: str) -> str:
    """Validate a players spec's syntax (and that a groups file exists) before any work is done."""
    text = (spec or "").strip()
    if text in ("channels", "layers"):
        return text
    if m := re.fullmatch(r"blocks:(\d+)", text):
        if int(m.group(1)) < 1:
            raise DataError("--players blocks:D needs D >= 1")
        return text
    if text.startswith("groups:") and len(text) > len("groups:"):
        path = Path(text[len("groups:") :])
        if not path.is_file():
            raise DataError(f"--players groups: file not found: {path}")
        return text
    raise DataError(f"unknown --players {spec!r}; choose from {', '.join(PLAYER_SPECS)}")


def _layer_index(table: UnitTable) -> dict[str, int]:
    return {layer.layer: i for i, layer in enumerate(table.layers)}


def resolve_units(key: str, table: UnitTable, by_layer: dict[str, int] | None = None) -> np.ndarray:
    """Unit indices named by ``LAYER``, ``LAYER:C`` or ``LAYER:A-B``; KeyError with the reason if none."""
    by_layer = by_layer if by_layer is not None else _layer_index(table)
    key = key.strip()
    if key in by_layer:
        layer = table.layers[by_layer[key]]
        return np.arange(layer.offset, layer.offset + layer.channels)
    name, sep, chan = key.rpartition(":")
    if sep and name in by_layer and (m := re.fullmatch(r"(\d+)(?:-(\d+))?", chan)):
        layer = table.layers[by_layer[name]]
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi >= layer.channels:
            raise KeyError(f"{key!r}: layer {name!r} has channels 0-{layer.channels - 1}")
        return np.arange(layer.offset + lo, layer.offset + hi + 1)
    raise KeyError(f"{key!r} is neither a unit layer nor a unit id (LAYER:C) of this model")


def _read_group_file(path: Path) -> list[tuple[str, str]]:
    """(unit key, group name) pairs in file order."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read groups file {path}: {exc}") from None
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise DataError(f"groups file {path.name} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not doc:
            raise DataError(f"groups file {path.name} must hold a non-empty JSON object")
        for key, value in doc.items():
            if isinstance(value, str):
                pairs.append((key, value))
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                pairs.extend((v, key) for v in value)
            else:
                raise DataError(
                    f"groups file {path.name}: {key!r} must map to a group name or a list of unit ids"
                )
        return pairs
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["unit", "group"]:
        rows = rows[1:]
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"groups file {path.name}, row {n}: expected 'unit,group'")
        pairs.append((row[0].strip(), row[1].strip()))
    if not pairs:
        raise DataError(f"groups file {path.name} lists no units")
    return pairs


def _compact(ids: list[int], table: UnitTable) -> str:
    """Member units as short text: '/conv1/Conv:0-15;/conv2/Conv:3'."""
    layer_of, chan = table.unit_layers(), table.unit_channels()
    parts: list[str] = []
    start = prev = None
    for i in sorted(ids):
        if prev is not None and i == prev + 1 and layer_of[i] == layer_of[prev]:
            prev = i
            continue
        if start is not None:
            parts.append(_span(start, prev, table, layer_of, chan))
        start = prev = i
    if start is not None:
        parts.append(_span(start, prev, table, layer_of, chan))
    return ";".join(parts)


def _span(a: int, b: int, table: UnitTable, layer_of: np.ndarray, chan: np.ndarray) -> str:
    name = table.layers[int(layer_of[a])].layer
    return f"{name}:{chan[a]}" if a == b else f"{name}:{chan[a]}-{chan[b]}"


@dataclass
class PlayerTable:
    """Players over a unit table: names, member unit indices, and the units lesioned for good."""

    spec: str
    names: list[str]
    members: list[np.ndarray]
    layers: list[str]  # the members' layer, or "" when they span several layers
    n_units: int
    lesioned: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    lesion: list[str] = field(default_factory=list)  # what was asked (player names, unit ids, layers)

    @property
    def n_players(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return self.n_players

    @property
    def is_units(self) -> bool:
        """Players are exactly the units (channels, nothing lesioned): the unit game is the game."""
        return self.spec == "channels" and not self.lesioned.size

    @property
    def grouped(self) -> bool:
        """Some player has more than one member unit."""
        return any(m.size != 1 for m in self.members)

    def fixed_present(self) -> np.ndarray:
        """Units in no player and not lesioned: present in every coalition."""
        used = np.zeros(self.n_units, bool)
        for m in self.members:
            used[m] = True
        used[self.lesioned] = True
        return np.flatnonzero(~used)

    def index_of(self, name: str) -> int:
        """Player index of a name as written in shapley.csv."""
        if not hasattr(self, "_index"):
            self._index = {n: i for i, n in enumerate(self.names)}
        if name not in self._index:
            raise KeyError(f"no player named {name!r}")
        return self._index[name]

    def unit_keep(self, removed_players: np.ndarray | list[int] = ()) -> np.ndarray:
        """Unit keep-mask [n_units] with the given players and the lesioned units removed."""
        keep = np.ones(self.n_units, bool)
        keep[self.lesioned] = False
        for p in removed_players:
            keep[self.members[int(p)]] = False
        return keep

    def unit_coalitions(self, coalitions: np.ndarray) -> np.ndarray:
        """Player coalitions bool [m, n_players] -> unit coalitions bool [m, n_units]."""
        coal = np.asarray(coalitions, bool)
        out = np.repeat(self.unit_keep()[None, :], len(coal), axis=0)
        for p, m in enumerate(self.members):
            out[:, m] = coal[:, p : p + 1]
        return out

    def wrap(self, game):
        """The game over these players, from a game over the units (itself when players are the units)."""
        from onnxshap.games.grouped import GroupedGame

        if self.is_units:
            return game
        return GroupedGame(game, self.members, absent=self.lesioned)

    def single_unit(self, player: int) -> int | None:
        """The unit index when the player is one unit, else None."""
        m = self.members[player]
        return int(m[0]) if m.size == 1 else None

    def member_text(self, player: int, table: UnitTable) -> str:
        return _compact(self.members[player].tolist(), table)

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self, table: UnitTable) -> dict[str, Any]:
        ids = table.unit_ids()
        doc: dict[str, Any] = {
            "version": PLAYERS_VERSION,
            "spec": self.spec,
            "n_players": self.n_players,
            "n_units": self.n_units,
            "lesion": list(self.lesion),
            "lesioned_units": [ids[i] for i in self.lesioned],
            "fixed_present_units": int(self.fixed_present().size),
        }
        if self.spec != "channels":  # channels are rebuilt from units.json
            doc["players"] = [
                {"name": n, "layer": la, "members": [ids[i] for i in m]}
                for n, la, m in zip(self.names, self.layers, self.members, strict=True)
            ]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any], table: UnitTable) -> PlayerTable:
        index = {u: i for i, u in enumerate(table.unit_ids())}
        try:
            lesioned = np.array(sorted(index[u] for u in doc.get("lesioned_units", [])), dtype=np.intp)
            if doc.get("spec", "channels") == "channels":
                base = channel_players(table)
                out = base.without(lesioned)
            else:
                rows = doc["players"]
                out = cls(
                    spec=doc["spec"],
                    names=[r["name"] for r in rows],
                    members=[np.array([index[u] for u in r["members"]], dtype=np.intp) for r in rows],
                    layers=[r.get("layer", MIXED_LAYERS) for r in rows],
                    n_units=table.n_units,
                    lesioned=lesioned,
                )
        except (KeyError, TypeError) as exc:
            raise DataError(f"players.json does not match units.json ({exc})") from None
        out.lesion = list(doc.get("lesion", []))
        return out

    def save(self, path: str | os.PathLike, table: UnitTable) -> Path:
        from onnxshap.fileio import atomic_write_bytes

        text = json.dumps(self.to_dict(table), indent=1).encode()
        atomic_write_bytes(Path(path), lambda fh: fh.write(text))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, table: UnitTable) -> PlayerTable:
        """Read players.json; a run folder without one (older runs) has one player per unit."""
        p = Path(path)
        if not p.is_file():
            return channel_players(table)
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {p}: {exc}") from None
        return cls.from_dict(doc, table)

    # -- lesions --------------------------------------------------------------------------------
    def without(self, units: np.ndarray, asked: list[str] | None = None) -> PlayerTable:
        """These players with ``units`` lesioned for good (players left with no member disappear)."""
        gone = np.union1d(self.lesioned, np.asarray(units, dtype=np.intp)).astype(np.intp)
        names, members, layers = [], [], []
        for n, m, la in zip(self.names, self.members, self.layers, strict=True):
            rest = np.setdiff1d(m, gone)
            if rest.size:
                names.append(n)
                members.append(rest.astype(np.intp))
                layers.append(la)
        if not names:
            raise DataError("the lesion removes every player: nothing left to value")
        return PlayerTable(
            self.spec, names, members, layers, self.n_units, gone, list(self.lesion) + list(asked or [])
        )

    def lesioned_by(self, items: list[str], table: UnitTable) -> PlayerTable:
        """Lesion the named players (names as in shapley.csv), unit ids (LAYER:C, LAYER:A-B) or layers."""
        by_layer = _layer_index(table)
        units: list[np.ndarray] = []
        for item in items:
            try:
                units.append(self.members[self.index_of(item)])
                continue
            except KeyError:
                pass
            try:
                units.append(resolve_units(item, table, by_layer))
            except KeyError as exc:
                raise DataError(f"--lesion: {exc.args[0]} (and no player has that name)") from None
        return self.without(np.concatenate(units) if units else np.zeros(0, np.intp), items)


def channel_players(table: UnitTable) -> PlayerTable:
    """One player per unit."""
    layer_of = table.unit_layers()
    return PlayerTable(
        "channels",
        table.unit_ids(),
        [np.array([i], dtype=np.intp) for i in range(table.n_units)],
        [table.layers[int(i)].layer for i in layer_of],
        table.n_units,
    )


def build_players(spec: str, table: UnitTable) -> PlayerTable:
    """The player table for a spec over a unit table (see the module docstring)."""
    spec = check_spec(spec)
    if spec == "channels":
        return channel_players(table)
    if spec == "layers":
        return PlayerTable(
            spec,
            [layer.layer for layer in table.layers],
            [np.arange(la.offset, la.offset + la.channels) for la in table.layers],
            [layer.layer for layer in table.layers],
            table.n_units,
        )
    if spec.startswith("blocks:"):
        d = int(spec.split(":", 1)[1])
        names, members, layers = [], [], []
        for la in table.layers:
            for start in range(0, la.channels, d):
                stop = min(start + d, la.channels)
                names.append(f"{la.layer}:{start}-{stop - 1}" if stop - start > 1 else f"{la.layer}:{start}")
                members.append(np.arange(la.offset + start, la.offset + stop))
                layers.append(la.layer)
        return PlayerTable(spec, names, members, layers, table.n_units)
    return _group_players(spec, Path(spec[len("groups:") :]), table)


def _group_players(spec: str, path: Path, table: UnitTable) -> PlayerTable:
    by_layer = _layer_index(table)
    owner = np.full(table.n_units, -1, dtype=np.intp)
    order: dict[str, int] = {}
    ids = table.unit_ids()
    for key, group in _read_group_file(path):
        try:
            units = resolve_units(key, table, by_layer)
        except KeyError as exc:
            raise DataError(f"groups file {path.name}: {exc.args[0]}") from None
        g = order.setdefault(group, len(order))
        clash = units[(owner[units] >= 0) & (owner[units] != g)]
        if clash.size:
            other = next(n for n, i in order.items() if i == owner[clash[0]])
            raise DataError(
                f"groups file {path.name}: unit {ids[clash[0]]} is in group {other!r} and in {group!r}"
            )
        owner[units] = g
    layer_of = table.unit_layers()
    names = list(order)
    members = [np.flatnonzero(owner == g) for g in range(len(names))]
    layers = []
    for m in members:
        found = np.unique(layer_of[m])
        layers.append(table.layers[int(found[0])].layer if found.size == 1 else MIXED_LAYERS)
    return PlayerTable(spec, names, members, layers, table.n_units)
