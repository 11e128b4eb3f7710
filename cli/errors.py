"""Turn failures into one line on stderr and an exit code: 2 for bad input, 130 when interrupted (143 on
SIGTERM)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from onnxshap.errors import OnnxShapError

EXIT_ERROR = 2


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"onnxshap: error: {message}", err=True)
    sys.exit(code)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for commands: no tracebacks unless ONNXSHAP_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("ONNXSHAP_DEBUG"):
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except OnnxShapError as exc:
            fail(str(exc))
        except KeyboardInterrupt as exc:
            from onnxshap.interrupts import Terminated

            fail(
                "terminated" if isinstance(exc, Terminated) else "interrupted",
                143 if isinstance(exc, Terminated) else 130,
            )
        except (OSError, MemoryError) as exc:
            fail(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug of ours: still one line, with a hint to get the traceback
            fail(f"unexpected {type(exc).__name__}: {exc} (set ONNXSHAP_DEBUG=1 for the traceback)")

    return wrapper
