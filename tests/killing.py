"""Run a script in a subprocess and kill -9 it once it has written its first checkpoint (resume tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from onnxshap.estimators.checkpoint import checkpoint_path

REPO = Path(__file__).resolve().parents[1]


def sigint_as_in_a_terminal() -> None:
    """Popen ``preexec_fn``: SIGINT back to its default, so the child's Python raises KeyboardInterrupt on
    Ctrl-C. A shell that starts a job in the background (``cmd &``, nohup) ignores SIGINT, the child would
    inherit that, and a Ctrl-C test would then test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_after_first_checkpoint(
    args: list[str], ckpt: Path, timeout: float = 60, settle: float = 0.15
) -> None:
    """`python *args` with the repository importable; SIGKILL `settle` s after `ckpt` has a checkpoint."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + timeout
        while not checkpoint_path(ckpt).exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f"no checkpoint within {timeout} s"
            time.sleep(0.01)
        time.sleep(settle)  # let it get further than the first checkpoint
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
