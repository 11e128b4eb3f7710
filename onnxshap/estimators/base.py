"""Estimator base class, parameter validation and the run loop (budget, checkpoints, progress)."""

from __future__ import annotations

import copy
import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from onnxshap.deadline import DeadlineReached, deadline
from onnxshap.deadline import remaining as deadline_remaining
from onnxshap.estimators.checkpoint import (
    check_fingerprint,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from onnxshap.estimators.errors import CheckpointError, ParameterError
from onnxshap.games.base import Game
from onnxshap.interrupts import raise_on_sigterm
from onnxshap.progress import ProgressLines
from onnxshap.results import ShapleyResult, scalar_summary


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and math.isfinite(x)
    )


def _check(name: str, ok: bool, want: str, value: Any) -> None:
    if not ok:
        raise ParameterError(f"{name} must be {want}, got {value!r}")


BOUNDS = ("betting", "stitched", "plugin-bernstein", "bernstein", "hoeffding", "student-t")

# name -> (check, description); shared by every estimator that takes the parameter.
VALIDATORS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "delta": (lambda v: _is_real(v) and 0 < v < 1, "a number in (0, 1)"),
    "epsilon": (lambda v: _is_real(v) and v >= 0, "a number >= 0"),
    "value_range": (lambda v: v is None or (_is_real(v) and v > 0), "a positive number or None"),
    "union_bound": (lambda v: isinstance(v, bool), "True or False"),
    "tolerance": (lambda v: v is None or (_is_real(v) and v >= 0), "a number >= 0 or None (no truncation)"),
    "patience": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "images": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1 or None (all data)"),
    "antithetic": (lambda v: isinstance(v, bool), "True or False"),
    "n_permutations": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1 or None"),
    "permutations_per_round": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "keep_samples": (lambda v: isinstance(v, bool), "True or False"),
    "min_samples": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "bound": (
        lambda v: v is None or v in BOUNDS,
        "None or one of " + ", ".join(repr(b) for b in BOUNDS),
    ),
    "guarantee": (
        lambda v: v is None or v in ("simultaneous", "per-unit", "none"),
        "None, 'simultaneous', 'per-unit' or 'none'",
    ),
    "check_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "rotations": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "rotation_groups": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "loo_control": (lambda v: isinstance(v, bool), "True or False"),
    "focus": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: off)"),
    "focus_share": (lambda v: _is_real(v) and 0 < v < 1, "a number in (0, 1)"),
    "focus_depth": (lambda v: v is None or (_is_int(v) and v >= 2), "an integer >= 2 or None (n / 8)"),
}

# Parameters that only bound how long a run goes on: a checkpoint may be resumed with other values.
BUDGET_PARAMS = frozenset({"n_permutations"})


class Estimator(ABC):
    """A resumable Shapley estimator: a state advanced by :meth:`step` until it stops or the budget ends.

    Subclasses declare ``name`` and their parameters with defaults in ``defaults``; every parameter must
    have an entry in :data:`VALIDATORS`. All randomness derives from ``seed`` (and a permutation index),
    so the state is a deterministic function of the parameters and the number of steps taken.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    runs_rounds: ClassVar[bool] = False  # True: a round executor may walk its permutations elsewhere
    evals_per_player: ClassVar[int | None] = None  # default_budget per player (None: ends by itself)

    @classmethod
    def check_backend(cls, backend: str) -> None:
        """Refuse a backend other than "local" unless this estimator walks rounds of permutations."""
        if backend != "local" and not cls.runs_rounds:
            raise ParameterError(
                f"backend {backend!r} runs the sampling estimators (tmab, truncated, permutation); "
                f"method={cls.name!r} runs with backend='local'"
            )

    @classmethod
    def default_budget(cls, n_players: int) -> int | None:
        """The evaluations an audit gives this estimator when told no budget (None: it ends by itself)."""
        return None if cls.evals_per_player is None else cls.evals_per_player * n_players

    @classmethod
    def budget_params(
        cls, params: dict[str, Any], max_evals: int | None, max_seconds: float | None
    ) -> dict[str, Any]:
        """``params`` with the parameters that end a run given neither ``max_evals`` nor ``max_seconds``."""
        return params

    def check_budget(self, max_evals: int | None) -> None:
        """Refuse a ``max_evals`` this estimator cannot finish in (no-op unless overridden)."""
        return None

    def __init__(
        self,
        game: Game,
        *,
        top_k: int | None = None,
        seed: int = 0,
        executor: object | None = None,  # a RoundExecutor (onnxshap.estimators.executor)
        **params: Any,
    ) -> None:
        if not isinstance(game, Game):
            raise ParameterError(
                f"expected an onnxshap.games.Game, got {type(game).__name__}; "
                "wrap a plain function with onnxshap.games.FunctionGame(fn, n_players)"
            )
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ParameterError(
                f"unknown parameter(s) for method={self.name!r}: {', '.join(unknown)}; valid parameters: {valid}"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        for key, value in self.params.items():
            check, want = VALIDATORS[key]
            _check(key, check(value), want, value)
        _check("seed", _is_int(seed) and seed >= 0, "an integer >= 0", seed)
        self.game = game
        self.n = game.n_players
        self.shape = game.value_shape
        self.seed = int(seed)
        self.top_k = self._check_top_k(top_k)
        self.evaluations = 0
        self.elapsed_before = 0.0
        if executor is not None:
            if not hasattr(executor, "run_round"):
                raise ParameterError(f"executor must be a round executor, got {executor!r}")
            type(self).check_backend(getattr(executor, "name", type(executor).__name__))
            self.executor = executor

    def _check_top_k(self, top_k: int | None) -> int | None:
        if top_k is None:
            return None
        _check("top_k", _is_int(top_k) and 1 <= top_k <= self.n, f"an integer in [1, {self.n}]", top_k)
        return int(top_k)

    # -- state -------------------------------------------------------------------------------
    def start(self) -> None:
        """Compute v(all) and v(empty) (each counted as one evaluation in a fresh run)."""
        self.v_all = np.asarray(self.game.v_all, dtype=np.float64)
        self.v_empty = np.asarray(self.game.v_empty, dtype=np.float64)
        self.evaluations = 2

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this estimator."""
        return {
            "method": self.name,
            "seed": self.seed,
            "top_k": self.top_k,
            "n_players": self.n,
            "value_shape": list(self.shape),
            "params": {k: v for k, v in self.params.items() if k not in BUDGET_PARAMS},
            "v_all": self.v_all,
            "v_empty": self.v_empty,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """State arrays to checkpoint."""
        return {}

    def scalars(self) -> dict[str, Any]:
        """Scalar state to checkpoint."""
        return {"evaluations": self.evaluations}

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        """Restore what :meth:`arrays` and :meth:`scalars` saved."""
        self.evaluations = int(scalars["evaluations"])

    # -- running -----------------------------------------------------------------------------
    @abstractmethod
    def step(self, remaining_evals: int | None) -> None:
        """Advance by one unit of work (a round of permutations, a chunk of coalitions)."""

    @abstractmethod
    def stop_reason(self) -> str | None:
        """Why the estimator stops on its own ("converged", "complete", "n_permutations"), or None."""

    def planned_evaluations(self) -> int | None:
        """Total evaluations when known in advance (exact, loo), for the progress bar."""
        return None

    def postfix(self) -> dict[str, Any]:
        """Extra fields for the progress bar."""
        return {}

    def top_k_margin(self, values: np.ndarray) -> float | None:
        """k-th largest score minus the (k+1)-th (None without k)."""
        if self.top_k is None or self.top_k >= self.n:
            return None
        s = np.sort(scalar_summary(values))[::-1]
        return float(s[self.top_k - 1] - s[self.top_k])

    # -- result ------------------------------------------------------------------------------
    @abstractmethod
    def estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(values, ci_low, ci_high, samples) from the current state."""

    def extra_metadata(self) -> dict[str, Any]:
        """Estimator-specific metadata."""
        return {}

    def converged(self, stop_reason: str) -> bool:
        """Whether the run reached its goal: its stop rule fired ("converged") or the computation is
        complete; stopping on a budget (n_permutations, max_evals, max_seconds) is not convergence."""
        return stop_reason in ("converged", "complete")

    def top_k_indices(self, values: np.ndarray) -> np.ndarray:
        """The reported top k (player indices, best first): by value unless the estimator selects."""
        return np.argsort(-scalar_summary(values), kind="stable")[: self.top_k]

    def decisions(self) -> np.ndarray | None:
        """Per-player top-k decisions (+1 in, -1 out, 0 undecided); None without a top-k rule."""
        return None

    def kept_samples(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(marginals, permutations) when samples were kept."""
        return None, None

    def result(self, stop_reason: str, wall_seconds: float, budget: dict[str, Any]) -> ShapleyResult:
        """Package the current state as a :class:`ShapleyResult`."""
        values, lo, hi, samples = self.estimates()
        top = None if self.top_k is None else self.top_k_indices(values)
        metadata: dict[str, Any] = {
            "estimator": self.name,
            "params": {**self.params, "top_k": self.top_k, **budget},
            "seed": self.seed,
            "evaluations": self.evaluations,
            "wall_seconds": wall_seconds,
            "v_all": self.v_all,
            "v_empty": self.v_empty,
            "n_players": self.n,
            "value_shape": list(self.shape),
            "converged": self.converged(stop_reason),
            "stop_reason": stop_reason,
            **self.extra_metadata(),
        }
        marg, perms = self.kept_samples()
        return ShapleyResult(
            values=values,
            ci_low=lo,
            ci_high=hi,
            samples=samples,
            top_k=top,
            evaluations=self.evaluations,
            metadata=metadata,
            marginals=marg,
            permutations=perms,
            decision=self.decisions(),
        )


def _progress_bar(enabled: bool | None, total: int | None, initial: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="eval",
        file=sys.stderr,
        disable=None if enabled is None else not enabled,
        dynamic_ncols=True,
        leave=False,
    )


def _evals_left_in(
    max_seconds: float | None, t0: float, start_seconds: float, evals_done: int, remaining: int | None
) -> int | None:
    """Evaluations for the next step: at the rate measured so far in this call, half of what fits in the
    time left (this call's ``max_seconds`` or an outer deadline, whichever ends first). A step the
    deadline cuts short is discarded, so steps are planned to end early: at most half the time left is
    ever at stake, and the run gets complete steps until close to its end."""
    elapsed = time.perf_counter() - t0
    lefts = [
        t
        for t in (None if max_seconds is None else max_seconds - elapsed, deadline_remaining())
        if t is not None
    ]
    if not lefts:
        return remaining
    if evals_done > 0:
        rate, share = evals_done / max(elapsed - start_seconds, 1e-9), 0.5
    else:  # from v(all), v(empty) only: a rough rate, so plan a smaller first step
        rate, share = 2.0 / max(start_seconds, 1e-9), 0.2
    by_time = max(1, int(share * rate * max(0.0, min(lefts))))
    return by_time if remaining is None else min(remaining, by_time)


def run(
    est: Estimator,
    *,
    max_evals: int | None = None,
    max_seconds: float | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every_evals: int | None = 10_000,
    checkpoint_every_seconds: float | None = 60.0,
    resume: bool = False,
    progress: bool | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
) -> ShapleyResult:
    """Drive ``est`` to its stopping rule or the budget, checkpointing and showing progress on the way.

    ``fingerprint_extra``: entries the caller adds to the checkpoint's fingerprint (opaque here, e.g. the
    sha256 of the model and of the data behind the game), so that resuming with anything else is refused.
    Interrupted (KeyboardInterrupt, or SIGTERM, which raises :class:`onnxshap.interrupts.Terminated` while
    this runs), the state as of the last complete step is checkpointed before the exception goes on.

    ``max_evals`` is checked between steps (sampling estimators shrink their last round to the evaluations
    left, so the count can exceed it by about one permutation's cost). ``max_seconds`` (and any outer
    :func:`onnxshap.deadline.deadline`) is a deadline checked between model calls: a step it cuts short is
    discarded and the result is that of the complete steps before it (``discarded_evaluations`` in the
    metadata); steps are planned at the measured rate to take at most half the time left. A run stopped by
    time is machine-dependent; a resumed run reproduces an uninterrupted one exactly only under
    ``max_evals`` / ``n_permutations``.
    """
    _check(
        "max_evals",
        max_evals is None or (_is_int(max_evals) and max_evals >= 1),
        "an integer >= 1",
        max_evals,
    )
    _check(
        "max_seconds", max_seconds is None or (_is_real(max_seconds) and max_seconds > 0), "> 0", max_seconds
    )
    _check("resume", isinstance(resume, bool), "True or False", resume)
    for name, val in (("checkpoint_every_evals", checkpoint_every_evals),):
        _check(name, val is None or (_is_int(val) and val >= 1), "an integer >= 1 or None", val)
    _check(
        "checkpoint_every_seconds",
        checkpoint_every_seconds is None
        or (_is_real(checkpoint_every_seconds) and checkpoint_every_seconds > 0),
        "a positive number or None",
        checkpoint_every_seconds,
    )
    if resume and checkpoint_dir is None:
        raise ParameterError("resume=True needs checkpoint_dir (the folder holding the checkpoint)")
    t0 = time.perf_counter()
    with deadline(max_seconds):
        try:
            est.start()
        except DeadlineReached:
            raise DeadlineReached(
                "the time budget ran out before v(all) and v(empty) were evaluated: nothing to report"
            ) from None
        return _drive(
            est, t0, max_evals, max_seconds, checkpoint_dir, checkpoint_every_evals,
            checkpoint_every_seconds, resume, progress, fingerprint_extra,
        )  # fmt: skip


def _drive(
    est: Estimator,
    t0: float,
    max_evals: int | None,
    max_seconds: float | None,
    checkpoint_dir: str | Path | None,
    checkpoint_every_evals: int | None,
    checkpoint_every_seconds: float | None,
    resume: bool,
    progress: bool | None,
    fingerprint_extra: dict[str, Any] | None,
) -> ShapleyResult:
    """:func:`run` after ``est.start()``, inside its deadline."""
    # v(all) and v(empty): a first measure of the cost per evaluation
    start_seconds = time.perf_counter() - t0
    fingerprint = est.fingerprint()
    clash = sorted(set(fingerprint) & set(fingerprint_extra or {}))
    if clash:
        raise ParameterError(f"fingerprint_extra must not redefine {', '.join(clash)}")
    fingerprint.update(fingerprint_extra or {})
    if checkpoint_dir is not None:
        loaded = load_checkpoint(checkpoint_dir)
        if loaded is not None:
            path = checkpoint_path(checkpoint_dir)
            if not resume:
                raise CheckpointError(
                    f"{path} already exists: pass resume=True to continue that run, or use another folder"
                )
            arrays, saved_fp, state = loaded
            check_fingerprint(saved_fp, fingerprint, path)
            try:
                est.load_state(arrays, state)
            except (KeyError, ValueError) as exc:
                raise CheckpointError(f"cannot resume from {path}: {exc}") from exc
            est.elapsed_before = float(state.get("elapsed", 0.0))

    def save() -> None:
        assert checkpoint_dir is not None
        state = {**est.scalars(), "elapsed": est.elapsed_before + time.perf_counter() - t0}
        save_checkpoint(checkpoint_dir, est.arrays(), fingerprint, state)

    def snapshot() -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The state between two steps, copied: what an interrupt in the middle of the next step saves,
        and what a deadline in the middle of the next step goes back to."""
        if checkpoint_dir is None and deadline_remaining() is None:
            return None
        state = {**est.scalars(), "elapsed": est.elapsed_before + time.perf_counter() - t0}
        return {k: np.array(v, copy=True) for k, v in est.arrays().items()}, copy.deepcopy(state)

    total = max_evals if max_evals is not None else est.planned_evaluations()
    bar = _progress_bar(progress, total, est.evaluations, f"onnxshap {est.name}")
    # not on a terminal (a log, a CI job): periodic lines instead of the bar, unless progress=False
    lines = ProgressLines(est.name, total, max_seconds) if progress is None and bar.disable else None
    last_evals, last_time = est.evaluations, time.perf_counter()
    first_evals = shown = est.evaluations
    last_good, last_good_evals = snapshot(), est.game.evaluations
    piece_evals = est.game.evaluations  # the game's count when the last piece of a round was folded

    def show() -> None:
        nonlocal shown
        bar.update(est.evaluations - shown)
        shown = est.evaluations
        if lines is not None:
            lines.update(est.evaluations, first_evals)
        post = est.postfix()
        if post:
            bar.set_postfix(post, refresh=False)

    def checkpoint_if_due() -> None:
        nonlocal last_evals, last_time
        if checkpoint_dir is not None and (
            (checkpoint_every_evals is not None and est.evaluations - last_evals >= checkpoint_every_evals)
            or (
                checkpoint_every_seconds is not None
                and time.perf_counter() - last_time >= checkpoint_every_seconds
            )
        ):
            save()
            last_evals, last_time = est.evaluations, time.perf_counter()

    def piece_done() -> None:
        """A piece of a round is folded: progress, a checkpoint when due (the round continues on resume)."""
        nonlocal piece_evals
        piece_evals = est.game.evaluations
        show()
        checkpoint_if_due()

    in_rounds = hasattr(est, "chunk_seconds")
    if in_rounds:
        # pieces of rounds: a checkpoint every interval, and a deadline keeps the complete pieces
        spans = [checkpoint_every_seconds if checkpoint_dir is not None else None]
        spans.append(10.0 if deadline_remaining() is not None else None)
        est.chunk_seconds = min((s for s in spans if s is not None), default=None)
        est.on_chunk = piece_done
    undo_sigterm = raise_on_sigterm()
    try:
        while True:
            reason = est.stop_reason()
            if reason is None and max_evals is not None and est.evaluations >= max_evals:
                reason = "max_evals"
            if reason is None and max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                reason = "max_seconds"
            if reason is not None:
                if in_rounds and est.round_stop is not None:
                    est.finish_round()  # a resumed round's complete pieces, when the budget is already spent
                break
            remaining = None if max_evals is None else max_evals - est.evaluations
            remaining = _evals_left_in(
                max_seconds, t0, start_seconds, est.evaluations - first_evals, remaining
            )
            est.step(remaining)
            last_good, last_good_evals = snapshot(), est.game.evaluations
            piece_evals = last_good_evals
            show()
            checkpoint_if_due()
    except DeadlineReached:
        if in_rounds and est.has_partial_round:
            # the round's complete pieces stand as a shorter round; the piece in flight is discarded
            est.discarded_evaluations = est.game.evaluations - piece_evals
            est.finish_round()
        else:  # the step in flight is discarded: the result is that of the complete steps before it
            assert last_good is not None  # a deadline is set, so every step was snapshotted
            est.load_state(*last_good)
            est.discarded_evaluations = est.game.evaluations - last_good_evals
        reason = "max_seconds"
    except KeyboardInterrupt:
        if checkpoint_dir is not None:
            if in_rounds and est.has_partial_round:
                save()  # the complete pieces of the round in progress; resume walks the rest
            elif last_good is not None:
                save_checkpoint(checkpoint_dir, last_good[0], fingerprint, last_good[1])
        raise
    finally:
        undo_sigterm()
        bar.close()
        if in_rounds:
            est.on_chunk = None
    if checkpoint_dir is not None:
        save()
    wall = est.elapsed_before + time.perf_counter() - t0
    budget = {"max_evals": max_evals, "max_seconds": max_seconds}
    result = est.result(reason, wall, budget)
    # evaluations of a step cut short by the deadline: spent, not used
    result.metadata["discarded_evaluations"] = int(getattr(est, "discarded_evaluations", 0))
    return result
