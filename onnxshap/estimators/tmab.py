"""TMAB-Shapley: top-k identification with truncated permutation walks, confidence sequences and LUCB."""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np

from onnxshap.estimators.base import _check, _is_int
from onnxshap.estimators.bounds import empirical_bernstein_radius, hoeffding_radius, t_halfwidth
from onnxshap.estimators.confseq import KINDS as SEQUENCES
from onnxshap.estimators.confseq import from_unit, make_sequences, stitched_boundary, to_unit
from onnxshap.estimators.errors import ParameterError
from onnxshap.estimators.focus import MAX_DRAWS_PER_STEP, FocusStrata, TailSums, default_depth
from onnxshap.estimators.loo_control import PositionSums
from onnxshap.estimators.permutation import SamplingEstimator
from onnxshap.estimators.stats import RunningMoments
from onnxshap.estimators.topk import IN, OUT, UNDECIDED, lucb_decisions, threshold_decisions
from onnxshap.estimators.truncated import resolve_value_range
from onnxshap.estimators.walk import RoundOutput
from onnxshap.games.base import Game, GameError

DEFAULT_TOP_K = 100
T_MIN_SAMPLES = 30  # the t interval leans on the central limit theorem: not below ~30 samples
MAX_SETTLE_RATIO = 100.0  # half-width / gap beyond which the settle estimate does not extrapolate

# guarantee -> (bounds it accepts, default bound)
GUARANTEES: dict[str, tuple[tuple[str, ...], str]] = {
    "simultaneous": (SEQUENCES, "betting"),
    "per-unit": (("bernstein", "hoeffding"), "bernstein"),
    "none": (("student-t",), "student-t"),
}
BOUND_GUARANTEE = {b: g for g, (bounds, _) in GUARANTEES.items() for b in bounds}


class PendingSamples:
    """Scalar samples (one [n] vector and mask per permutation, in permutation order) waiting to be fed
    to the confidence sequences after the round. Merges like :class:`RunningMoments`, so a distributed
    executor's chunk summaries carry them to the driver in index order."""

    def __init__(self) -> None:
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, x: np.ndarray, mask: np.ndarray) -> None:
        """Queue one permutation's samples."""
        self.samples.append((np.asarray(x, dtype=np.float64), np.asarray(mask, dtype=np.bool_)))

    def merge(self, other: PendingSamples) -> None:
        """Append another chunk's samples (call in index order)."""
        self.samples.extend(other.samples)

    def drain(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Take every queued sample."""
        out, self.samples = self.samples, []
        return out


class TMABEstimator(SamplingEstimator):
    """Find the top-k players by Shapley value with as few evaluations as possible, with a stated guarantee.

    Truncated multi-armed-bandit Shapley (Ghorbani & Zou 2020, Algorithm 1) rebuilt around a stop
    rule that can fire on real networks:

    * **Walks**: random permutations from the full set downwards, in rounds. Players already decided
      are removed without being evaluated (elimination), so walks get cheaper as the run goes. A walk is
      truncated once the value stays within ``tolerance`` x |v(all) - v(empty)| of v(empty) for
      ``patience`` consecutive checks, made every ``check_every`` removals; the players it did not reach
      get marginal 0. The checks are made whatever the active set, so a player's (truncated) marginal
      has the same law in every round.
      On a game that states ``monotone``, walks skip flat stretches exactly
      (:mod:`onnxshap.estimators.monotone_walk`): the same marginals for fewer evaluations.
    * **Guarantee** (``guarantee``, stated in ``metadata["guarantee"]``):

      - ``"simultaneous"`` (default): one confidence sequence per player at level ``delta`` / n
        (``bound``: ``"betting"``, hedged capital with predictable plug-in bets, Waudby-Smith & Ramdas
        2024, the default; ``"stitched"``, Howard et al. 2021; ``"plugin-bernstein"``, WSR's closed
        form; see :mod:`onnxshap.estimators.confseq` and ``bench/confseq.py``). With probability at
        least 1 - delta every interval holds its player's value at every round at once, so the stop
        rule may be checked after every round and every "certain" decision is right.
      - ``"per-unit"``: the original rule, kept for fidelity: empirical-Bernstein radius (Maurer &
        Pontil) at ``delta`` per player (``union_bound=True``: delta / n), re-checked every round
        (optional stopping: no anytime guarantee), tau = the (k+1)-th mean; a player leaves once its
        interval clears tau by ``epsilon``; stop when only tau's own player is left.
      - ``"none"``: Student-t intervals at delta / n per player (each player's variance floored at the
        mean over players, at least 30 samples before a decision): a CLT heuristic without a
        finite-sample guarantee. It can stop on a wrong top-k (truncated marginals are skewed).

      The intervals need the range R of the values (marginals lie in [-R, R]): ``value_range``, else
      the game's. Without either, R = max |v(all) - v(empty)| is a guess and the guarantee is "none".
    * **Stop** (simultaneous and none): LUCB. The selection is the k players with the largest means;
      stop ("converged") when the smallest lower bound in it is >= the largest upper bound outside it
      minus ``epsilon`` (a PAC tolerance: players within epsilon of the boundary may fall either side).
      Before that, ``decision`` labels each player +1 (certainly in the top k: fewer than k others can
      be above it), -1 (certainly out: k others are certainly above it) or 0; decided players are
      eliminated. Stopping on ``n_permutations`` / ``max_evals`` / ``max_seconds`` is not convergence.
    * **Leave-one-out control** (``loo_control=True``, scalar games): the first step values every unit
      alone; values and the selection then use leave-one-out as a control variate for where a unit
      landed in the walks (:mod:`onnxshap.estimators.loo_control`; a heuristic with a small bias), while
      intervals and decisions stay on the raw marginals.
    * **Focused contenders** (``focus=C``, scalar games): leave-one-out first, then between rounds
      stratified draws over removal positions 1 .. ``focus_depth`` - 1 (default n / 8) for C contenders,
      ``focus_share`` of the evaluations (:mod:`onnxshap.estimators.focus`): unbiased, precise values
      for the units that matter on networks that collapse early; the contenders are a heuristic choice,
      and intervals and decisions stay on the walks.
    * **Estimand**: with truncation, the mean of the truncated marginals (the "truncated Shapley
      value": the Shapley value when the game stays at v(empty) after the truncation point); with
      ``tolerance=None``, the Shapley value itself; with ``images``, its expectation over random data
      batches of that size. ``metadata["estimand"]`` says which.

    Vector games are ranked by the mean of the marginal over elements (its own sequence drives the
    bandit); ``ci_low`` / ``ci_high`` are per element: in "simultaneous" mode stitched Hoeffding
    sequences at delta / (n x elements), mergeable across workers. Defaults: k = min(100, n - 1),
    delta = 0.05, epsilon = 0, tolerance 0.2, patience 2 checks, check_every 4.
    """

    name = "tmab"
    unbudgeted_permutations = None  # no permutation cap: the stop rule or the budget ends a run
    evals_per_player = 100  # an audit's budget when told none: tmab has no natural end on near-ties
    defaults: ClassVar[dict[str, Any]] = {
        **SamplingEstimator.defaults,
        "delta": 0.05,
        "epsilon": 0.0,
        "value_range": None,
        "guarantee": None,
        "bound": None,
        "union_bound": False,
        "tolerance": 0.2,
        "patience": 2,
        "check_every": 4,
        "min_samples": 2,
        "antithetic": False,
        "rotations": 3,
        "rotation_groups": 16,
        "loo_control": False,
        "focus": 0,
        "focus_share": 0.5,
        "focus_depth": None,
    }

    def __init__(self, game: Game, *, top_k: int | None = None, **kwargs: Any) -> None:
        if top_k is None:
            top_k = min(DEFAULT_TOP_K, game.n_players - 1) if isinstance(game, Game) else None
        super().__init__(game, top_k=top_k, **kwargs)
        _check(
            "top_k",
            _is_int(top_k) and 1 <= top_k < self.n,
            f"an integer in [1, {self.n - 1}] for tmab",
            top_k,
        )
        self._resolve_guarantee()
        if self.params["loo_control"]:
            self._refuse_unless_ranked_by_estimate("loo_control")
        self.loo: np.ndarray | None = None
        self.positions = PositionSums(self.n) if self.params["loo_control"] else None
        self._init_focus()
        if self.params["antithetic"] and self.params["rotations"] > 1:
            raise ParameterError("antithetic and rotations > 1 exclude each other (both group the walks)")
        self.marginal_count = np.zeros(self.n, dtype=np.int64)
        self.summary = RunningMoments(self.n) if self.shape else self.stats
        self.pending = PendingSamples()
        self.sequences = (
            # a marginal of 0 maps to 1/2 of [-R, R], or to 0 of a monotone game's [0, R]
            make_sequences(self.params["bound"], self.n, self.delta_per_player, 0.0 if game.monotone else 0.5)
            if self.mode == "simultaneous"
            else None
        )
        self.active = np.ones(self.n, dtype=np.bool_)
        self.decision = np.zeros(self.n, dtype=np.int8)
        self.selected = np.arange(self.top_k or 0)
        self.tau = math.nan
        self.tau_player = -1
        self.is_converged = False
        self.round_log: list[list[int]] = []  # per round: [permutations, evaluations, active at start]

    def _resolve_guarantee(self) -> None:
        guarantee, bound = self.params["guarantee"], self.params["bound"]
        if guarantee is None:
            guarantee = BOUND_GUARANTEE[bound] if bound is not None else "simultaneous"
        bounds, default = GUARANTEES[guarantee]
        if bound is None:
            bound = default
        if bound not in bounds:
            raise ParameterError(
                f"bound={bound!r} does not give guarantee={guarantee!r}; with it use one of: {', '.join(bounds)}"
            )
        if self.params["union_bound"] and guarantee != "per-unit":
            raise ParameterError(
                "union_bound applies to guarantee='per-unit' (the other guarantees always divide delta by n)"
            )
        self.params["guarantee"], self.params["bound"] = guarantee, bound

    @property
    def rotated_walks(self) -> int:
        """Walks made in rotation groups at the start of the run (0: none)."""
        b = self.params["rotations"]
        return b * self.params["rotation_groups"] if b > 1 else 0

    def group_size(self, index: int) -> int:
        """Walks per confidence-sequence sample at permutation ``index``."""
        if self.params["antithetic"]:
            return 2
        return self.params["rotations"] if index < self.rotated_walks else 1

    @property
    def unit(self) -> int:  # type: ignore[override]
        """Walks per sample in the next round (rounds never straddle the end of the rotation phase)."""
        return self.group_size(self.next_perm)

    @property
    def mode(self) -> str:
        """The guarantee the intervals are built for ("simultaneous", "per-unit" or "none")."""
        return self.params["guarantee"]

    def start(self) -> None:
        """Compute v(all), v(empty) and R."""
        super().start()
        self.value_range, self.value_range_source = resolve_value_range(
            self.params["value_range"], self.game, self.v_all, self.v_empty
        )
        if self.value_range_source not in ("parameter", "game"):
            warnings.warn(
                "tmab: the game states no value_range; using R = max |v(all) - v(empty)| = "
                f"{self.value_range:.4g} for the confidence bounds, a guess: the guarantee is 'none' "
                "(pass value_range=R for a real bound)",
                stacklevel=3,
            )
        if self.value_range <= 0:
            raise ParameterError("tmab needs value_range > 0 (v(all) equals v(empty): pass value_range=R)")
        # a monotone game's marginals lie in [0, R]: half the range to rule out on the low side
        self.marginal_range = (0.0 if self.game.monotone else -self.value_range, self.value_range)

    @property
    def min_samples(self) -> int:
        """Samples a player needs before it can be decided (at least 30 for student-t)."""
        m = self.params["min_samples"]
        return max(m, T_MIN_SAMPLES) if self.params["bound"] == "student-t" else m

    @property
    def delta_per_player(self) -> float:
        """delta / n, or delta per player in the per-unit mode without the union bound."""
        d = self.params["delta"]
        return d if self.mode == "per-unit" and not self.params["union_bound"] else d / self.n

    @property
    def n_elements(self) -> int:
        """Elements of one value (1 for scalar games)."""
        return int(np.prod(self.shape)) if self.shape else 1

    # -- intervals -------------------------------------------------------------------------------
    def radius(self, variance: np.ndarray, counts: np.ndarray, delta: float) -> np.ndarray:
        """Per-unit / CLT radius per player (per element for [n, *shape] variances); inf below 2 samples."""
        big_r = self.value_range
        if self.params["bound"] == "student-t":
            # A unit whose few samples are all equal (typically the zeros truncation hands out) has
            # variance 0 and would leave at once: no unit's variance is taken below the mean over units.
            floor = np.nanmean(variance, axis=0) if np.isfinite(variance).any() else 0.0
            r = t_halfwidth(np.maximum(variance, floor), counts, delta)
            return np.where(np.isfinite(r), r, np.inf)
        if self.params["bound"] == "hoeffding":
            r = hoeffding_radius(counts, big_r, delta, variance.shape[1:])
            return np.where(counts.reshape(-1, *((1,) * (variance.ndim - 1))) >= 2, r, np.inf)
        return empirical_bernstein_radius(variance, counts, big_r, delta)

    def summary_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds on each player's ranking value, as the decisions use them."""
        mu, counts = self.summary.mean, self.summary.count
        if self.sequences is not None:
            lo = from_unit(self.sequences.lo, *self.marginal_range)
            hi = from_unit(self.sequences.hi, *self.marginal_range)
            return np.minimum(lo, mu), np.maximum(hi, mu)
        cb = self.radius(self.summary.variance(), counts, self.delta_per_player)
        cb = np.where(counts >= self.min_samples, cb, np.inf)
        return mu - cb, mu + cb

    def element_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(ci_low, ci_high) per player and element."""
        mean, counts = self.stats.mean, self.stats.count
        big_r = self.value_range
        if self.sequences is not None and not self.shape:
            return self.summary_bounds()
        if self.sequences is not None:
            # stitched Hoeffding (sub-Gaussian, variance t / 4 in [0, 1] units): from counts alone
            alpha = self.params["delta"] / (self.n * self.n_elements)
            low, high = self.marginal_range
            t = np.maximum(counts, 1).astype(np.float64)
            half = stitched_boundary(t / 4.0, alpha / 2.0, c=0.0, v_min=0.25) / t * (high - low)
            half = np.where(counts > 0, half, np.inf).reshape(-1, *((1,) * len(self.shape)))
            return np.maximum(mean - half, low), np.minimum(mean + half, high)
        delta = self.delta_per_player / (self.n_elements if self.mode == "none" else 1)
        cb = self.radius(self.stats.variance(), counts, delta)
        cb = np.where(np.isfinite(cb), cb, big_r)
        return mean - cb, mean + cb

    # -- bandit --------------------------------------------------------------------------------
    def truncation_threshold(self) -> float | None:
        """tolerance x max |v(all) - v(empty)| (None: no truncation)."""
        tol = self.params["tolerance"]
        return None if tol is None else tol * float(np.max(np.abs(self.v_all - self.v_empty)))

    def _refuse_unless_ranked_by_estimate(self, name: str) -> None:
        """``name`` replaces the values the selection ranks by: scalar games, and not the per-unit rule
        (which ranks by the raw means, so the reported values and the top-k would disagree)."""
        if self.shape:
            raise ParameterError(f"{name} applies to scalar games only")
        if self.mode == "per-unit":
            raise ParameterError(
                f"{name} needs guarantee 'simultaneous' or 'none' (the per-unit rule ranks by the raw means)"
            )

    @property
    def focus_size(self) -> int:
        """Contenders per draw (``focus``, at most n)."""
        return min(self.params["focus"], self.n)

    def _init_focus(self) -> None:
        """Focused position strata (``focus`` contenders; see onnxshap.estimators.focus), or none."""
        self.strata: FocusStrata | None = None
        self.tail: TailSums | None = None
        self.focus_evals = 0
        self.contenders = np.zeros(0, dtype=np.intp)
        if not self.params["focus"]:
            return
        self._refuse_unless_ranked_by_estimate("focus")
        depth = self.params["focus_depth"]
        depth = default_depth(self.n) if depth is None else min(int(depth), self.n)
        if depth < 2:
            raise ParameterError(f"focus needs at least 2 players and focus_depth >= 2, got {depth}")
        self.strata, self.tail = FocusStrata(self.n, depth), TailSums(self.n, depth)

    def walk_options(self) -> dict[str, Any]:
        """Walk options, plus the truncation checks' spacing and the rotation groups."""
        return {
            **super().walk_options(),
            "antithetic": self.params["antithetic"],
            "check_every": self.params["check_every"],
            "rotations": self.params["rotations"],
            "rotated_walks": self.rotated_walks,
        }

    def step(self, remaining_evals: int | None) -> None:
        """With ``loo_control`` or ``focus``, the first step computes every unit's leave-one-out value
        (n evaluations, the game's cheapest way); then rounds of walks, and with ``focus``, between
        rounds, draws for the contenders until they have had ``focus_share`` of the evaluations."""
        if (self.positions is not None or self.strata is not None) and self.loo is None:
            self.loo = np.asarray(self.game.leave_one_out(), dtype=np.float64).reshape(self.n)
            self.evaluations += self.n
            return
        draws = self.focus_draws_due(remaining_evals)
        if draws:
            self.focus_step(draws)
            return
        super().step(remaining_evals)

    def focus_draws_due(self, remaining_evals: int | None) -> int:
        """Draws for the next step: none inside a round or before the first one; else as many as the
        evaluations the draws are owed (``focus_share`` of all draws and walks) and ``remaining_evals``
        pay for in full, at most MAX_DRAWS_PER_STEP (0: walk on)."""
        if self.strata is None or self.round_stop is not None or not self.rounds:
            return 0
        share = self.params["focus_share"]
        owed = share / (1.0 - share) * self.walk_evals - self.focus_evals
        per_draw = self.focus_size + 1
        if remaining_evals is not None:
            owed = min(owed, remaining_evals)
        return int(min(owed // per_draw, MAX_DRAWS_PER_STEP))

    def focus_step(self, draws: int) -> None:
        """Choose the contenders, make ``draws`` draws for them, and decide again."""
        assert self.strata is not None and self.loo is not None
        size = self.focus_size
        by_loo = np.argsort(-self.loo, kind="stable")[: (size + 1) // 2]
        ranked = np.argsort(-self.ranking_values(), kind="stable")
        rest = ranked[~np.isin(ranked, by_loo)]
        self.contenders = np.sort(np.concatenate([by_loo, rest[: size - len(by_loo)]]))
        spent = self.strata.run(self.game, self.contenders, self.seed, draws, self.params["images"])
        self.evaluations += spent
        self.focus_evals += spent
        self.decide()

    def ranking_values(self) -> np.ndarray:
        """What the selection ranks by: the mean marginal, or with ``loo_control`` the control-variate
        estimate, and with ``focus`` the focused units' values (clipped into the confidence interval,
        which holds the value whenever it holds)."""
        mean = self.summary.mean
        if self.loo is None:
            return mean
        est = mean if self.positions is None else self.positions.estimate(mean, self.summary.count, self.loo)
        if self.strata is not None:
            est = self.focused_values(est)[0]
        if self.sequences is None:
            return est
        lo, hi = self.summary_bounds()
        return np.clip(est, lo, hi)

    def focused_values(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, standard errors) of the focused units; ``base`` and NaN for the others."""
        assert self.strata is not None and self.tail is not None and self.loo is not None
        count = self.summary.count
        tail = self.tail.sum_x / np.where(count > 0, count, 1)
        return self.strata.estimate(self.loo, tail, base)

    def round_size(self, remaining_evals: int | None) -> int:
        """As for any sampling estimator, but a round ends where the rotation phase ends."""
        size = super().round_size(remaining_evals)
        if self.next_perm < self.rotated_walks:
            size = min(size, self.rotated_walks - self.next_perm)
        return size

    def active_players(self) -> np.ndarray | None:
        """The current active set (None when every player is active)."""
        return None if self.active.all() else self.active

    def absorb(self, out: RoundOutput) -> None:
        """Fold marginals of sampled players into the moments; queue the ranking samples. A group of
        walks (rotations of one order, or an antithetic pair; same active set) counts as one sample:
        the group's mean, an unbiased marginal sample of lower variance."""
        indices = out.indices if out.indices is not None else np.arange(len(out.orders))
        r = 0
        while r < len(out.orders):
            u = self.group_size(int(indices[r]))
            marg = out.marginals[r] if u == 1 else out.marginals[r : r + u].mean(axis=0)
            mask = out.sampled[r]
            self.marginal_count += mask * u
            if self.positions is not None:
                self.positions.add(out.orders[r : r + u], out.marginals[r : r + u], mask)
            if self.tail is not None:
                self.tail.add(out.orders[r : r + u], out.marginals[r : r + u], mask)
            r += u
            self.stats.update(marg, mask)
            flat = marg if not self.shape else marg.reshape(self.n, -1).mean(axis=1)
            if self.summary is not self.stats:
                self.summary.update(flat, mask)
            if self.mode == "simultaneous":
                self.pending.add(flat, mask)

    def moments(self) -> list[Any]:
        """Per-element moments, the ranking summary's for vector games, and the queued samples."""
        mine: list[Any] = [self.stats] if self.summary is self.stats else [self.stats, self.summary]
        extra = [m for m in (self.positions, self.tail) if m is not None]
        return [*mine, self.pending, *extra]

    def finish_round(self) -> None:
        """Record the round's cost (permutations, evaluations, active players), then close it."""
        self.round_log.append([self.round_done, self.round_walk_evals, int(self.active.sum())])
        super().finish_round()

    def after_round(self) -> None:
        """Feed the round's samples to the sequences, then decide, eliminate and check the stop rule."""
        assert self.top_k is not None
        if self.sequences is not None:
            low, high = self.marginal_range
            for x, mask in self.pending.drain():
                if self.game.monotone and mask.any() and x[mask].min() < -1e-9 * high:
                    raise GameError(
                        f"{type(self.game).__name__} states monotone=True, but a marginal of "
                        f"{x[mask].min():.4g} came out: its intervals would be wrong"
                    )
                self.sequences.update(to_unit(x, low, high), mask)
            self.sequences.refresh()
        self.decide()

    def decide(self) -> None:
        """Decisions, active set, selection and the stop rule from the current intervals and values."""
        assert self.top_k is not None
        if self.mode == "per-unit":
            cb = self.radius(self.summary.variance(), self.summary.count, self.delta_per_player)
            state, self.tau, self.tau_player, self.active = threshold_decisions(
                self.summary.mean,
                cb,
                self.summary.count,
                self.top_k,
                self.params["epsilon"],
                self.min_samples,
            )
        else:
            lo, hi = self.summary_bounds()
            state = lucb_decisions(
                self.ranking_values(), lo, hi, self.top_k, self.params["epsilon"], previous=self.decision
            )
            self.active = state.decision == UNDECIDED
        self.decision, self.selected, self.is_converged = state.decision, state.selected, state.converged

    def stop_reason(self) -> str | None:
        """ "converged" once the stop rule fired."""
        if self.is_converged:
            return "converged"
        return super().stop_reason()

    # -- checkpoint / result ---------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Moments, summary moments (vector games), sequences, active set and decisions."""
        arrays = {
            **super().arrays(),
            "active": self.active,
            "decision": self.decision,
            "selected": self.selected,
            "round_log": np.asarray(self.round_log, dtype=np.int64).reshape(-1, 3),
            "marginal_count": self.marginal_count,
        }
        if self.summary is not self.stats:
            arrays.update(self.summary.state("summary_"))
        if self.sequences is not None:
            arrays.update(self.sequences.state("cs_"))
        if self.positions is not None:
            arrays.update(self.positions.state("positions_"))
        if self.strata is not None and self.tail is not None:
            arrays.update(self.strata.state("focus_"))
            arrays.update(self.tail.state("tail_"))
            arrays["contenders"] = self.contenders
        if self.loo is not None:
            arrays["loo"] = self.loo
        if self.pending.samples:  # a round checkpointed before its end: its queued samples
            arrays["pending_x"] = np.stack([x for x, _ in self.pending.samples])
            arrays["pending_mask"] = np.stack([m for _, m in self.pending.samples])
        return arrays

    def scalars(self) -> dict[str, Any]:
        """Counters plus threshold and convergence flag."""
        return {
            **super().scalars(),
            "tau": self.tau,
            "tau_player": self.tau_player,
            "converged": self.is_converged,
            "focus_evals": self.focus_evals,
        }

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        """Restore moments, sequences, active set, decisions and threshold."""
        super().load_state(arrays, scalars)
        if self.summary is not self.stats:
            self.summary.load(arrays, "summary_")
        if self.sequences is not None:
            self.sequences.load(arrays, "cs_")
        for name, dtype in (("active", np.bool_), ("decision", np.int8)):
            arr = np.asarray(arrays[name], dtype=dtype)
            if arr.shape != (self.n,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({self.n},)")
            setattr(self, name, arr.copy())
        self.selected = np.asarray(arrays["selected"], dtype=np.intp).copy()
        self.marginal_count = np.asarray(arrays["marginal_count"], dtype=np.int64).copy()
        self.round_log = arrays["round_log"].astype(np.int64).tolist()
        self.tau = float(scalars["tau"])
        self.tau_player = int(scalars["tau_player"])
        self.is_converged = bool(scalars["converged"])
        if self.positions is not None:
            self.positions.load(arrays, "positions_")
        if self.strata is not None and self.tail is not None:
            self.strata.load(arrays, "focus_")
            self.tail.load(arrays, "tail_")
            self.contenders = np.asarray(arrays["contenders"], dtype=np.intp).copy()
            self.focus_evals = int(scalars["focus_evals"])
        self.loo = np.asarray(arrays["loo"], dtype=np.float64).copy() if "loo" in arrays else None
        self.pending = PendingSamples()
        for x, mask in zip(arrays.get("pending_x", ()), arrays.get("pending_mask", ()), strict=True):
            self.pending.add(x, mask)

    def estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Means and the intervals of the chosen guarantee."""
        lo, hi = self.element_bounds()
        values = self.ranking_values().copy() if self.loo is not None else self.stats.mean.copy()
        return values, lo, hi, self.marginal_count.copy()

    def top_k_indices(self, values: np.ndarray) -> np.ndarray:
        """The current selection, best first (decided players keep their place)."""
        if not self.rounds:
            return super().top_k_indices(values)
        return np.asarray(self.selected, dtype=np.intp).copy()

    def decisions(self) -> np.ndarray | None:
        """+1 certainly in the top k, -1 certainly out, 0 undecided."""
        return self.decision.copy()

    def postfix(self) -> dict[str, Any]:
        """Active players, certain ones and the current top-k margin."""
        post: dict[str, Any] = {
            "active": int(self.active.sum()),
            "in": int((self.decision == IN).sum()),
        }
        margin = self.top_k_margin(self.summary.mean)
        if margin is not None:
            post["margin"] = f"{margin:.3g}"
        return post

    def guarantee_statement(self) -> tuple[str, str]:
        """(guarantee, one sentence saying what it covers)."""
        delta = self.params["delta"]
        if self.value_range_source not in ("parameter", "game"):
            return "none", (
                f"no value range was given, so R = max |v(all) - v(empty)| = {self.value_range:.4g} is a "
                "guess (marginals can exceed it): the intervals and decisions are a heuristic"
            )
        if self.mode == "simultaneous":
            low, high = self.marginal_range
            return "simultaneous", (
                f"{self.params['bound']} confidence sequences at delta/n = {delta}/{self.n} per unit, for "
                f"marginals in [{low:.4g}, {high:.4g}]{' (the game is monotone)' if low == 0 else ''}: with "
                f"probability >= {1 - delta:g} every interval holds at every round at once, and every "
                f"certain decision is right (up to epsilon = {self.params['epsilon']:g})"
            )
        if self.mode == "per-unit":
            per = delta / self.n if self.params["union_bound"] else delta
            return "per-unit", (
                f"{self.params['bound']} radius at level {1 - per:g} per unit, re-checked every round "
                "(no anytime or joint guarantee): Neuron Shapley's original rule"
            )
        return "none", (
            "Student-t intervals (central limit theorem, variance floored): a heuristic without a "
            "finite-sample guarantee; it can stop on a wrong top-k"
        )

    def estimand(self) -> str:
        """What the intervals are about."""
        if self.params["tolerance"] is None:
            what = "the Shapley value"
        else:
            what = (
                "the truncated Shapley value (mean marginal with walks cut once the value stays within "
                f"{self.truncation_threshold():.4g} of v(empty); equals the Shapley value when the game "
                "stays at v(empty) after the cut)"
            )
        if self.params["images"] is not None:
            what += f", in expectation over random batches of {self.params['images']} data items"
        return what

    def settle_estimate(self) -> dict[str, Any]:
        """A rough extrapolation of the evaluations still needed to decide every unit (a heuristic).

        Each undecided unit must shrink its interval to its distance from the boundary (the midpoint of
        the k-th and (k+1)-th means, at least epsilon): with width ~ 1/t (samples on one value) that
        takes t w/g samples, with width ~ 1/sqrt(t) t (w/g)^2; times the recent evaluations per sample.
        Units tied at the boundary (epsilon 0), still without an interval, or whose gap is under 1% of
        their half-width are counted, not extrapolated.
        """
        undecided = np.flatnonzero(self.decision == UNDECIDED)
        if not undecided.size or not self.round_log:
            return {"low": 0, "high": 0, "ties": 0, "without_interval": 0, "too_close": 0}
        mu = self.summary.mean
        s = np.sort(mu)[::-1]
        boundary = 0.5 * (s[self.top_k - 1] + s[self.top_k])  # type: ignore[operator]
        lo, hi = self.summary_bounds()
        width = (hi - lo)[undecided] / 2.0
        gap = np.maximum(np.abs(mu[undecided] - boundary), self.params["epsilon"])
        t = np.maximum(self.summary.count[undecided], 1).astype(np.float64)
        tied = gap <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = width / np.where(tied, 1.0, gap)
        # a unit whose gap is under 1% of its half-width is too close to call: counted, not extrapolated
        known = ~tied & np.isfinite(ratio) & (ratio <= MAX_SETTLE_RATIO)
        extra_low = np.maximum(t * ratio - t, 0.0)[known]
        extra_high = np.maximum(t * ratio**2 - t, 0.0)[known]
        perms, evals, active = self.round_log[-1]
        per_sample = evals / max(perms * max(active, 1), 1)
        return {
            "low": int(extra_low.sum() * per_sample),
            "high": int(extra_high.sum() * per_sample),
            "ties": int(tied.sum()),
            "without_interval": int((~tied & ~np.isfinite(ratio)).sum()),
            "too_close": int((~tied & np.isfinite(ratio) & (ratio > MAX_SETTLE_RATIO)).sum()),
        }

    def extra_metadata(self) -> dict[str, Any]:
        """Guarantee, estimand, decisions, elimination and costs per round."""
        guarantee, statement = self.guarantee_statement()
        rounds = self.round_log
        per_perm = [e / p if p else None for p, e, _ in rounds]
        top = self.top_k_indices(self.summary.mean)
        return {
            **super().extra_metadata(),
            "guarantee": guarantee,
            "guarantee_statement": statement,
            "estimand": self.estimand(),
            "epsilon": self.params["epsilon"],
            "bound": self.params["bound"],
            "decisions": {
                "in": int((self.decision == IN).sum()),
                "out": int((self.decision == OUT).sum()),
                "undecided": int((self.decision == UNDECIDED).sum()),
            },
            "certain_in_top_k": int((self.decision[top] == IN).sum()),
            "threshold": self.tau,
            "threshold_player": self.tau_player,
            "n_active": int(self.active.sum()),
            "active_players": np.flatnonzero(self.active).tolist(),
            "value_range": self.value_range,
            "value_range_source": self.value_range_source,
            "marginal_range": list(self.marginal_range),
            "delta_per_player": self.delta_per_player,
            "truncation_threshold": self.truncation_threshold(),
            "ranking_summary": "value" if not self.shape else "mean over elements",
            "evaluations_per_permutation_by_round": per_perm,
            "active_by_round": [a for _, _, a in rounds],
            "evaluations_per_permutation_first_round": per_perm[0] if per_perm else None,
            "evaluations_per_permutation_last_round": per_perm[-1] if per_perm else None,
            "settle_budget_estimate": self.settle_estimate() if not self.is_converged else None,
            **self.loo_control_metadata(),
            **self.focus_metadata(),
        }

    def loo_control_metadata(self) -> dict[str, Any]:
        """What ``loo_control`` did (nothing when off)."""
        if self.positions is None:
            return {}
        return {
            "loo_control": {
                "leave_one_out": None if self.loo is None else self.loo.tolist(),
                "position_bin_edges": self.positions.edges.tolist(),
                "beta_by_position_bin": None if self.loo is None else self.positions.beta(self.loo).tolist(),
                "statement": (
                    "values and the selection use leave-one-out as a control variate (one slope per "
                    "removal-position bin, fitted on the same walks: a heuristic with a small bias); the "
                    "intervals and certain decisions come from the raw marginals"
                ),
            }
        }

    def focus_metadata(self) -> dict[str, Any]:
        """What ``focus`` did (nothing when off)."""
        if self.strata is None:
            return {}
        values, stderr = (None, None) if self.loo is None else self.focused_values(self.summary.mean)
        done = self.strata.focused()
        return {
            "focus": {
                "contenders": self.contenders.tolist(),
                "focused_units": np.flatnonzero(done).tolist(),
                "focused_values": [] if values is None else values[done].tolist(),
                "focused_stderr": [] if stderr is None else stderr[done].tolist(),
                "depth": self.strata.depth,
                "strata_edges": self.strata.edges.tolist(),
                "draws": self.strata.draws,
                "evaluations": self.focus_evals,
                "share": self.params["focus_share"],
                "statement": (
                    "focused units are valued by leave-one-out (position 0), draws over removal positions "
                    f"1..{self.strata.depth - 1} (stratified, untruncated) and the walks beyond; the "
                    "contenders are a heuristic choice, the standard errors cover the draws only (no "
                    "finite-sample guarantee); the intervals and certain decisions come from the walks"
                ),
            }
        }
