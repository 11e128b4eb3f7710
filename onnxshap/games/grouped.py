"""Games over groups of another game's players: grouped players, lesions and merged pairs.

The wrapped game stays what it is (an ONNX game over units, a synthetic game, ...); a wrapper only maps a
coalition of its own players to a coalition of the wrapped game's players. Estimators see a plain Game.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxshap.games.base import Game, GameError


class GroupedGame(Game):
    """v'(T) = v(union of the groups in T, plus the inner players in no group, minus ``absent``).

    ``groups`` are disjoint lists of the inner game's player indices; inner players in no group and not in
    ``absent`` are present in every coalition (fixed), players in ``absent`` are removed in every one
    (lesioned). ``subgame`` (a fresh data batch per permutation) is passed through to the inner game.
    """

    def __init__(self, game: Game, groups: Sequence[Sequence[int]], absent: Sequence[int] = ()) -> None:
        if not isinstance(game, Game):
            raise GameError(f"GroupedGame wraps an onnxshap Game, got {type(game).__name__}")
        n = game.n_players
        members = [np.asarray(g, dtype=np.intp).reshape(-1) for g in groups]
        absent_idx = np.asarray(absent, dtype=np.intp).reshape(-1)
        if not members:
            raise GameError("a grouped game needs at least one group")
        owner = np.full(n, -1, dtype=np.intp)
        for g, idx in enumerate(members):
            if idx.size == 0:
                raise GameError(f"group {g} is empty")
            if idx.min() < 0 or idx.max() >= n:
                raise GameError(f"group {g} holds a player outside [0, {n})")
            if (owner[idx] >= 0).any() or len(np.unique(idx)) != idx.size:
                raise GameError(f"group {g} shares players with another group (groups must be disjoint)")
            owner[idx] = g
        if absent_idx.size and (absent_idx.min() < 0 or absent_idx.max() >= n):
            raise GameError(f"absent players must lie in [0, {n})")
        if (owner[absent_idx] >= 0).any():
            raise GameError("a player cannot be both in a group and absent")
        self.game = game
        self.groups = members
        self.absent = absent_idx
        self._owner = owner
        self._grouped = np.flatnonzero(owner >= 0)
        self._base = np.ones(n, dtype=np.bool_)
        self._base[absent_idx] = False
        super().__init__(
            len(members),
            value_shape=game.value_shape,
            batch_size=game.batch_size,
            value_range=game.value_range,
        )

    def expand(self, coalitions: np.ndarray) -> np.ndarray:
        """Group coalitions bool [m, n_groups] -> inner coalitions bool [m, inner n_players]."""
        coal = np.asarray(coalitions, dtype=np.bool_)
        out = np.repeat(self._base[None, :], len(coal), axis=0)
        out[:, self._grouped] = coal[:, self._owner[self._grouped]]
        return out

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self.game(self.expand(coalitions))

    def leave_one_out(self, players: np.ndarray | None = None) -> np.ndarray:
        """v'(all) - v'(all without group i): through the inner game's ``values_without`` when it has one
        (an ONNX game values each group from its earliest layer on), else one evaluation per group."""
        idx = np.arange(self.n_players) if players is None else np.asarray(players, dtype=np.intp)
        values_without = getattr(self.game, "values_without", None)
        if values_without is None or not len(idx):
            return super().leave_one_out(idx)
        values = values_without([self.groups[int(p)] for p in idx], base=self._base)
        self.evaluations += len(idx)
        return np.asarray(self.v_all, dtype=np.float64) - values

    def _rewrapped(self, inner: Game) -> GroupedGame:
        new = object.__new__(type(self))
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("v_all", "v_empty")})
        new.game = inner
        new.evaluations = 0
        return new

    def subgame(self, rng: np.random.Generator, size: int | None) -> Game:
        """The same grouping over the inner game's subgame (e.g. a random batch of data items)."""
        inner = self.game.subgame(rng, size)
        return self if inner is self.game else self._rewrapped(inner)

    def with_inner(self, game: Game) -> GroupedGame:
        """The same grouping over another game with the same players (e.g. the held-out split)."""
        if game.n_players != self.game.n_players:
            raise GameError(f"the other game has {game.n_players} players, not {self.game.n_players}")
        return self._rewrapped(game)


class LesionedGame(GroupedGame):
    """The game with ``lesioned`` players removed for good; the others, in their original order, are valued
    (msapy's ``lesioned=``). ``remaining[i]`` is the inner index of player i."""

    def __init__(self, game: Game, lesioned: Sequence[int]) -> None:
        gone = np.unique(np.asarray(lesioned, dtype=np.intp).reshape(-1))
        if gone.size and (gone.min() < 0 or gone.max() >= game.n_players):
            raise GameError(f"lesioned players must lie in [0, {game.n_players})")
        self.remaining = np.setdiff1d(np.arange(game.n_players), gone)
        if not self.remaining.size:
            raise GameError("every player is lesioned: nothing left to value")
        super().__init__(game, [[int(i)] for i in self.remaining], absent=gone)


def merged_pair(game: Game, i: int, j: int) -> tuple[GroupedGame, int]:
    """The game where players i and j always come and go together (one player), the others unchanged.

    Returns the game and the index of the merged player (the others keep their order, the pair sits where
    the first of i, j was).
    """
    if i == j or not (0 <= i < game.n_players and 0 <= j < game.n_players):
        raise GameError(f"a pair needs two distinct players in [0, {game.n_players}), got ({i}, {j})")
    first, second = min(i, j), max(i, j)
    groups: list[list[int]] = []
    for p in range(game.n_players):
        if p == first:
            groups.append([first, second])
        elif p != second:
            groups.append([p])
    return GroupedGame(game, groups), first
