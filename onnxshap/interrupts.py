"""SIGTERM as an exception, so that a run stopped by `kill` (or a scheduler) saves its state like Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM was received (a KeyboardInterrupt, so whatever cleans up on Ctrl-C does it here too)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated("terminated (SIGTERM)")


def raise_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise :class:`Terminated` instead of ending the process on the spot; return the undo.

    Only from the main thread and only where SIGTERM still has its default action (a handler the program
    installed is left alone: then the undo does nothing)."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        return lambda: None
    signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """:func:`raise_on_sigterm` for the duration of a block."""
    undo = raise_on_sigterm()
    try:
        yield
    finally:
        undo()
