"""Monte-Carlo permutation sampling (what msapy does), the base of the truncated and tmab estimators."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from onnxshap.estimators.base import Estimator
from onnxshap.estimators.bounds import t_halfwidth
from onnxshap.estimators.executor import LOCAL, LocalExecutor, RoundExecutor
from onnxshap.estimators.stats import RunningMoments
from onnxshap.estimators.walk import RoundOutput, walk_round
from onnxshap.games.base import Game

DEFAULT_PERMUTATIONS = 100


class SamplingEstimator(Estimator):
    """Walks random permutations from the full set downwards in rounds and averages the marginals.

    Permutation ``j`` (0, 1, 2, ...) takes its order, and its data batch when ``images`` is set, from
    ``np.random.default_rng([seed, j])``; the marginals of a round are folded into the running moments
    in permutation order. Hence the estimate after N permutations depends only on the seed and N, not on
    the game's ``batch_size``, on ``permutations_per_round`` (except for tmab, whose active set changes
    between rounds) nor on how rounds are split between workers.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "n_permutations": None,
        "permutations_per_round": 16,
        "delta": 0.05,
        "images": None,
        "keep_samples": False,
    }
    unit = 1  # permutations per statistical sample (2 for antithetic pairs)
    executor: RoundExecutor = LOCAL  # who walks the rounds (see onnxshap.estimators.executor)
    runs_rounds = True
    unbudgeted_permutations: ClassVar[int | None] = DEFAULT_PERMUTATIONS  # walked given no budget
    # Set by the run loop: walk a round in pieces of about half this many seconds (local executor),
    # calling on_chunk after each piece but the last, so that a round can be checkpointed (and a
    # deadline keep its complete pieces) before it ends. None: a round is walked in one piece.
    chunk_seconds: float | None = None
    on_chunk: Callable[[], None] | None = None

    @classmethod
    def budget_params(
        cls, params: dict[str, Any], max_evals: int | None, max_seconds: float | None
    ) -> dict[str, Any]:
        """Without any budget, ``n_permutations`` defaults to ``unbudgeted_permutations``."""
        unbounded = max_evals is None and max_seconds is None and params.get("n_permutations") is None
        if unbounded and cls.unbudgeted_permutations is not None:
            return {**params, "n_permutations": cls.unbudgeted_permutations}
        return params

    def __init__(self, game: Game, **kwargs: Any) -> None:
        super().__init__(game, **kwargs)
        self.stats = RunningMoments(self.n, self.shape)
        self.next_perm = 0
        self.rounds = 0
        self.walk_evals = 0
        # the round in progress: permutations [next_perm, round_stop), of which round_done are folded
        self.round_stop: int | None = None
        self.round_done = 0
        self.round_walk_evals = 0
        self.mutating = False  # True while folding or closing a round: the state is not consistent
        self._seconds_per_perm: float | None = None
        self._kept_m: list[np.ndarray] = []
        self._kept_o: list[np.ndarray] = []

    # -- walk configuration, overridden by truncated / tmab --------------------------------------
    def truncation_threshold(self) -> float | None:
        """Absolute truncation threshold on |v(S) - v(empty)| (None: no truncation)."""
        return None

    def active_players(self) -> np.ndarray | None:
        """Players evaluated in the next round (None: all)."""
        return None

    def permutation_cap(self) -> int | None:
        """Total permutations after which the estimator stops on its own."""
        return self.params["n_permutations"]

    # -- loop --------------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        """ "n_permutations" once the permutation budget is spent."""
        cap = self.permutation_cap()
        if cap is not None and self.next_perm >= cap:
            return "n_permutations"
        return None

    def round_size(self, remaining_evals: int | None) -> int:
        """Permutations in the next round: ``permutations_per_round``, less at the end of a budget."""
        u = self.unit
        size = math.ceil(self.params["permutations_per_round"] / u) * u
        cap = self.permutation_cap()
        if cap is not None:
            size = min(size, math.ceil((cap - self.next_perm) / u) * u)
        if remaining_evals is not None:
            if self.next_perm:
                cost = self.walk_evals / self.next_perm
            else:
                cost = self.n - 1 + (2 if self.params["images"] is not None else 0)
            size = min(size, math.ceil(remaining_evals / max(cost, 1.0) / u) * u)
        return max(size, u)

    def walk_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`walk_round` for the next round (besides game and indices)."""
        return {
            "seed": self.seed,
            "images": self.params["images"],
            "antithetic": self.unit == 2,
            "active": self.active_players(),
            "truncation": self.truncation_threshold(),
            "patience": self.params.get("patience", 6),
            "check_every": self.params.get("check_every", 1),
            "rotations": self.params.get("rotations", 1),
        }

    def group_size(self, index: int) -> int:
        """Walks that form one sample at permutation ``index`` (a round's pieces never split them)."""
        return self.unit

    def step(self, remaining_evals: int | None) -> None:
        """Walk one round of permutations (with ``self.executor``) and fold its marginals in; a round
        interrupted after some of its pieces (see ``chunk_seconds``) continues where it stopped."""
        if self.round_stop is None:
            self.round_stop = self.next_perm + self.round_size(remaining_evals)
            self.round_done, self.round_walk_evals = 0, 0
        while self.next_perm + self.round_done < self.round_stop:
            start = self.next_perm + self.round_done
            stop = min(self.round_stop, start + self._piece(start))
            t0 = time.perf_counter()
            evaluations = self._walk(range(start, stop))
            self._seconds_per_perm = (time.perf_counter() - t0) / (stop - start)
            self.evaluations += evaluations
            self.walk_evals += evaluations
            self.round_walk_evals += evaluations
            self.round_done = stop - self.next_perm
            if self.on_chunk is not None and stop < self.round_stop:
                self.on_chunk()
        self.finish_round()

    @property
    def has_partial_round(self) -> bool:
        """Whether complete pieces of an unfinished round are folded and the state is consistent: what
        a checkpoint may save, and what :meth:`finish_round` may close as a shorter round."""
        return self.round_done > 0 and not self.mutating

    def _piece(self, start: int) -> int:
        """Permutations in the next piece of the round: all that are left unless ``chunk_seconds`` is
        set and the executor is local; then whole groups worth about ``chunk_seconds`` / 2 (one group
        while the time per permutation is unknown)."""
        left = self.round_stop - start
        if self.chunk_seconds is None or not isinstance(self.executor, LocalExecutor):
            return left
        group = self.group_size(start)
        if self._seconds_per_perm is None:
            return group
        fit = int(self.chunk_seconds / 2 / max(self._seconds_per_perm, 1e-9)) // group * group
        return min(left, max(group, fit))

    def _walk(self, indices: range) -> int:
        """Walk and fold permutations ``indices``; returns their evaluations."""
        if not isinstance(self.executor, LocalExecutor):
            return self.executor.run_round(self, indices)
        out = walk_round(self.game, indices, **self.walk_options())
        self.mutating = True
        self.fold(out)
        self.mutating = False
        return out.evaluations

    def finish_round(self) -> None:
        """Close the round in progress after the permutations folded so far (all of it, or the complete
        pieces before a deadline) and run :meth:`after_round`."""
        self.mutating = True
        self.next_perm += self.round_done
        self.round_stop, self.round_done, self.round_walk_evals = None, 0, 0
        self.rounds += 1
        self.after_round()
        self.mutating = False

    def fold(self, out: RoundOutput) -> None:
        """Absorb a walked round (or a chunk of it, chunks in index order) and keep its samples."""
        self.absorb(out)
        if self.params["keep_samples"]:
            self._kept_m.append(np.where(_expand(out.sampled, self.shape), out.marginals, np.nan))
            self._kept_o.append(out.orders)

    def moments(self) -> list[RunningMoments]:
        """The running moments :meth:`absorb` updates (a distributed executor merges chunks into them)."""
        return [self.stats]

    def absorb(self, out: RoundOutput) -> None:
        """Fold a round's marginals into the moments, one permutation at a time, in index order."""
        for r in range(len(out.orders)):
            self.stats.update(out.marginals[r], out.sampled[r])

    def after_round(self) -> None:
        """Hook run after each round (tmab updates its active set here)."""

    # -- checkpoint --------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Running moments (and kept samples)."""
        arrays = self.stats.state("stats_")
        if self.params["keep_samples"]:
            m, o = self.kept_samples()
            arrays["kept_marginals"] = m if m is not None else np.zeros((0, self.n, *self.shape))
            arrays["kept_orders"] = o if o is not None else np.zeros((0, self.n), np.intp)
        return arrays

    def scalars(self) -> dict[str, Any]:
        """Counters: next permutation index, rounds, evaluations."""
        return {
            **super().scalars(),
            "next_perm": self.next_perm,
            "rounds": self.rounds,
            "walk_evals": self.walk_evals,
            "round_stop": -1 if self.round_stop is None else self.round_stop,
            "round_done": self.round_done,
            "round_walk_evals": self.round_walk_evals,
        }

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        """Restore moments and counters."""
        super().load_state(arrays, scalars)
        self.stats.load(arrays, "stats_")
        self.next_perm = int(scalars["next_perm"])
        self.rounds = int(scalars["rounds"])
        self.walk_evals = int(scalars["walk_evals"])
        stop = int(scalars.get("round_stop", -1))
        self.round_stop = None if stop < 0 else stop
        self.round_done = int(scalars.get("round_done", 0))
        self.round_walk_evals = int(scalars.get("round_walk_evals", 0))
        if self.params["keep_samples"]:
            self._kept_m = [arrays["kept_marginals"]]
            self._kept_o = [arrays["kept_orders"]]

    def kept_samples(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """All per-permutation marginals (NaN: no sample) and orders, when ``keep_samples``."""
        if not self.params["keep_samples"]:
            return None, None
        if not self._kept_m:
            return np.zeros((0, self.n, *self.shape)), np.zeros((0, self.n), np.intp)
        return np.concatenate(self._kept_m), np.concatenate(self._kept_o)

    # -- result ------------------------------------------------------------------------------
    def estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Means with (1 - delta) Student-t intervals; NaN intervals below 2 samples."""
        values = self.stats.mean.copy()
        half = t_halfwidth(self.stats.variance(), self.stats.count, self.params["delta"])
        return values, values - half, values + half, self.stats.count * self.unit

    def postfix(self) -> dict[str, Any]:
        """Permutations done and the current top-k margin."""
        post: dict[str, Any] = {"perms": self.next_perm}
        margin = self.top_k_margin(self.stats.mean)
        if margin is not None:
            post["margin"] = f"{margin:.3g}"
        return post

    def extra_metadata(self) -> dict[str, Any]:
        """Permutations walked, rounds and the mean cost of a permutation."""
        return {
            "permutations": self.next_perm,
            "rounds": self.rounds,
            "evaluations_per_permutation": self.walk_evals / self.next_perm if self.next_perm else None,
            "guarantee": "none",
            "guarantee_statement": (
                f"Student-t intervals at level {1 - self.params['delta']:g} per unit (central limit "
                "theorem): a heuristic, not simultaneous over units nor valid under repeated looks"
            ),
        }


def _expand(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * len(shape))


class PermutationEstimator(SamplingEstimator):
    """Plain Monte-Carlo permutation sampling: every player gets one marginal per permutation.

    Each permutation costs n - 1 evaluations and its marginals sum exactly (up to rounding) to
    v(all) - v(empty), so the estimate is efficient after every permutation. With ``antithetic`` the
    permutations come in pairs (an order and its reverse); a pair's mean marginal is one sample for the
    variance, and ``n_permutations`` is rounded up to an even number. Intervals: two-sided Student-t at
    level 1 - ``delta`` from the sample variance. Without any budget, ``n_permutations`` defaults to 100.
    """

    name = "permutation"
    defaults: ClassVar[dict[str, Any]] = {**SamplingEstimator.defaults, "antithetic": False}

    def __init__(self, game: Game, **kwargs: Any) -> None:
        super().__init__(game, **kwargs)
        if self.params["antithetic"]:
            self.unit = 2

    def absorb(self, out: RoundOutput) -> None:
        """Plain: one sample per permutation; antithetic: one sample per pair (the pair's mean)."""
        if self.unit == 1:
            super().absorb(out)
            return
        for r in range(0, len(out.orders), 2):
            self.stats.update((out.marginals[r] + out.marginals[r + 1]) / 2.0)
