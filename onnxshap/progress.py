"""Progress as periodic plain lines, for logs and CI jobs where a progress bar is not drawn."""

from __future__ import annotations

import sys
import time

from onnxshap.deadline import remaining as deadline_remaining

EVERY_SECONDS = 30.0


class ProgressLines:
    """Prints ``onnxshap NAME: N evaluations in S s, ETA ...`` to stderr at most every ``every`` seconds.

    The ETA is the earlier of the time budget's end (``max_seconds`` / the command's deadline) and the
    end of the planned evaluations at the rate so far; without either, only the rate is given."""

    def __init__(self, name: str, total: int | None, max_seconds: float | None, every: float | None = None):
        self.name, self.total, self.max_seconds = name, total, max_seconds
        self.every = EVERY_SECONDS if every is None else every
        self.t0 = self.last = time.monotonic()

    def update(self, evaluations: int, first: int = 0) -> None:
        """Report ``evaluations`` (``first``: those done before this call, e.g. on resume) if it is time."""
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        rate = (evaluations - first) / elapsed if elapsed > 0 else 0.0
        lefts = [t for t in (deadline_remaining(),) if t is not None]
        if self.max_seconds is not None:
            lefts.append(max(0.0, self.max_seconds - elapsed))
        if self.total is not None and rate > 0:
            lefts.append(max(0, self.total - evaluations) / rate)
        eta = ""
        if lefts:
            eta = f", ETA {time.strftime('%H:%M:%S', time.localtime(time.time() + min(lefts)))}"
        print(
            f"onnxshap {self.name}: {evaluations:,} evaluations in {elapsed:.0f} s ({rate:.2f}/s){eta}",
            file=sys.stderr,
            flush=True,
        )
