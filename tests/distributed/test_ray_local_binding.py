"""A local Ray instance started by onnxshap listens on the loopback interface only (in a fresh process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import json, os, re, subprocess, time
from onnxshap.distributed.ray_executor import RayExecutor
from onnxshap import estimate
from onnxshap.games.function import FunctionGame

def family(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found

executor = RayExecutor(workers=1)
try:
    game = FunctionGame(lambda c: c.sum(1).astype(float) ** 2, 6)
    estimate(game, "permutation", n_permutations=4, permutations_per_round=4, backend=executor)
    time.sleep(1.0)
    ours = family(os.getpid())
    sockets = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            name = re.search(r'\(\("([^"]+)"', line)
            sockets.append([line.split()[3], name.group(1) if name else "?"])
    print(json.dumps(sockets))
finally:
    executor.close()
"""


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to list listening sockets")
def test_local_instance_listens_on_loopback_only(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sockets = json.loads(done.stdout.strip().splitlines()[-1])
    names = {name for _, name in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the instance's own servers were seen
    loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
    exposed = [(addr, name) for addr, name in sockets if not addr.startswith(loopback)]
    assert not exposed, f"listening beyond loopback: {exposed}"
