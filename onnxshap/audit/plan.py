"""How an audit splits its time budget between phases, and what each phase actually took.

With ``--max-seconds T`` the whole command runs inside one deadline (:mod:`onnxshap.deadline`). The
estimation gets a share of the time left once the model and data are loaded (the rest is kept for the
baselines, the removal curves and writing the run folder); each later phase runs while time is left and is
skipped, with a printed line saying so, when it is not. Everything is recorded in run.json under ``plan``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from onnxshap.deadline import DeadlineReached, deadline
from onnxshap.deadline import remaining as deadline_remaining

T = TypeVar("T")

# share of the time left after setup that the estimation may use
ESTIMATION_SHARE = {True: 0.6, False: 0.85}  # with baselines / without
# kept back at the end for writing the run folder (results, curves, run.json)
WRITE_RESERVE_SECONDS = 2.0
# phases expected to take longer than this get a start line with an ETA and an end line
LONG_PHASE_SECONDS = 5.0


def say(line: str) -> None:
    """A plan or phase line, on stderr (stdout stays the command's result)."""
    print(f"onnxshap: {line}", file=sys.stderr, flush=True)


@dataclass
class AuditPlan:
    """The budget of one command and the seconds each phase took."""

    total_seconds: float | None
    baselines: bool
    started: float = field(default_factory=time.monotonic)
    seconds: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def left(self) -> float | None:
        """Seconds left before the command's deadline (None without one)."""
        return deadline_remaining()

    def estimation_budget(self) -> float | None:
        """The estimation's seconds: its share of what is left (None without a deadline)."""
        left = self.left()
        if left is None:
            return None
        budget = max(0.0, left - WRITE_RESERVE_SECONDS) * ESTIMATION_SHARE[self.baselines]
        self.budgets["estimation"] = round(budget, 3)
        rest = "baselines, removal curves" if self.baselines else "removal curves"
        say(
            f"plan for {self.total_seconds:g} s: setup took {self.elapsed():.1f} s; estimation <= {budget:.0f} s, "
            f"then {rest} while time is left (a phase that does not fit is skipped and named), "
            f"{WRITE_RESERVE_SECONDS:g} s kept for writing the run folder"
        )
        return budget

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.monotonic() - self.started

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (its seconds add up if it runs in several pieces)."""
        t = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - t, 3)

    def run(self, name: str, fn: Callable[[], T], needs_seconds: float | None = None) -> T | None:
        """``fn()`` as phase ``name``, or None (with a line saying why) when it does not fit: the expected
        ``needs_seconds`` exceed the time left, or the deadline passes while it runs."""
        left = self.left()
        if left is not None:
            left -= WRITE_RESERVE_SECONDS
            if left <= 0 or (needs_seconds is not None and needs_seconds > left):
                need = f"needs ~{needs_seconds:.0f} s, " if needs_seconds is not None else ""
                return self.skip(name, f"{need}{max(left, 0):.0f} s of the budget left")
        long = needs_seconds is not None and needs_seconds >= LONG_PHASE_SECONDS
        if long:
            eta = time.strftime("%H:%M:%S", time.localtime(time.time() + float(needs_seconds)))
            say(f"{name}: ~{needs_seconds:.0f} s expected (ETA {eta})")
        try:
            with self.phase(name), deadline(left):  # the writing reserve stays free
                out = fn()
            if long or self.seconds.get(name, 0.0) >= LONG_PHASE_SECONDS:
                say(f"{name}: done in {self.seconds[name]:.0f} s")
            return out
        except DeadlineReached:
            return self.skip(name, "the budget ran out while it ran")

    def skip(self, name: str, why: str) -> None:
        """Record and print that phase ``name`` was skipped."""
        self.skipped[name] = why
        say(f"{name} skipped: {why}")
        return None

    def as_json(self) -> dict[str, Any]:
        """What run.json records: the budget, the planned and the actual seconds, what was skipped."""
        return {
            "max_seconds": self.total_seconds,
            "budgets": self.budgets,
            "seconds": self.seconds,
            "skipped": self.skipped,
            "wall_seconds": round(self.elapsed(), 3),
        }
