"""Ctrl-C (SIGINT) and SIGTERM checkpoint the last complete step, so a resume equals the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from onnxshap.estimators import estimate
from onnxshap.estimators.checkpoint import load_checkpoint
from onnxshap.games.function import FunctionGame
from tests.killing import REPO, sigint_as_in_a_terminal

pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys, time
from pathlib import Path
import numpy as np
from onnxshap.estimators import estimate
from onnxshap.games.function import FunctionGame

WEIGHTS = np.linspace(1.0, 2.0, 8)
calls = 0

def value(coalitions):
    global calls
    calls += 1
    if calls == 45:
        Path(sys.argv[2]).write_text("walking")  # the test's cue: in the second round of permutations
    time.sleep(0.02)
    return (coalitions @ WEIGHTS) ** 2 + coalitions[:, 0] * coalitions[:, 3]

game = FunctionGame(value, 8, batch_size=1)
res = estimate(game, "permutation", seed=5, n_permutations=48, permutations_per_round=4,
               checkpoint_dir=sys.argv[1], checkpoint_every_seconds=3600.0, resume=len(sys.argv) > 3)
print(json.dumps({"values": res.values.tolist(), "ci_low": res.ci_low.tolist(),
                  "samples": res.samples.tolist(), "evaluations": res.evaluations, "calls": calls}))
"""


def _reference() -> dict:
    weights = np.linspace(1.0, 2.0, 8)
    game = FunctionGame(lambda c: (c @ weights) ** 2 + c[:, 0] * c[:, 3], 8, batch_size=1)
    res = estimate(game, "permutation", seed=5, n_permutations=48, permutations_per_round=4)
    return {
        "values": res.values.tolist(),
        "ci_low": res.ci_low.tolist(),
        "samples": res.samples.tolist(),
        "evaluations": res.evaluations,
    }


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_equals_uninterrupted(tmp_path, sig):
    script = tmp_path / "slow_game.py"
    script.write_text(SCRIPT)
    ckpt, cue = tmp_path / "ckpt", tmp_path / "cue"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt), str(cue)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    while not cue.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)  # long before the hourly checkpoint, in the middle of a round
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"Traceback" in err  # it stopped there (the script catches nothing)
    saved = load_checkpoint(ckpt)
    assert saved is not None, "no checkpoint written on the signal"
    state = saved[2]
    assert state["evaluations"] > 2 and state["next_perm"] < 48 and state["next_perm"] % 4 == 0
    resumed = subprocess.run(
        [sys.executable, str(script), str(ckpt), str(cue), "resume"],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    got = json.loads(resumed.stdout)
    walked_again = got.pop("calls")
    assert got == _reference()  # bit for bit: JSON floats round-trip exactly
    assert walked_again < got["evaluations"]  # it continued, it did not start over
