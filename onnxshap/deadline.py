"""A deadline for a whole command, checked between ONNX Runtime calls.

``with deadline(seconds):`` sets an absolute end time (monotonic clock) for everything run inside it;
nested deadlines keep the earlier end. Code that calls the model (a game's chunk loop, the per-layer
leave-one-out, the removal curves) calls :func:`check` before each call, which raises
:class:`DeadlineReached` once the time is up; whoever owns a phase catches it and keeps what was complete.
So a command overruns its deadline by at most one model call (plus the time to write its results).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

from onnxshap.errors import OnnxShapError

_END: contextvars.ContextVar[float | None] = contextvars.ContextVar("onnxshap_deadline", default=None)


class DeadlineReached(OnnxShapError):
    """The time given to the current command (or phase) is up (one line, like every user-facing error,
    should it reach the command line: the phases that own the deadline catch it first)."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Run the body with at most ``seconds`` left (None: no new limit; an outer deadline still holds)."""
    if seconds is None:
        yield
        return
    end = time.monotonic() + max(0.0, float(seconds))
    outer = _END.get()
    token = _END.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _END.reset(token)


def remaining() -> float | None:
    """Seconds left before the innermost deadline (never negative), or None without one."""
    end = _END.get()
    return None if end is None else max(0.0, end - time.monotonic())


def check() -> None:
    """Raise :class:`DeadlineReached` if the deadline has passed."""
    end = _END.get()
    if end is not None and time.monotonic() >= end:
        raise DeadlineReached("the time budget (--max-seconds) is used up")
