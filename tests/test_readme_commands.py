"""The README's commands, run exactly as written (taken from its bash blocks), with the exit codes it states.

A command counts as runnable when it names no placeholder (MODEL.onnx, RUN_DIR, [options], a|b choices, ...).
Each runs in a fresh folder where ``models/`` is the repository's, as a user in a clone would; a command
followed by a ``# exit N`` comment must exit N, any other must exit 0.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b|\[|\||\.\.\.|\\$")


def onnxshap() -> list[str]:
    """The installed `onnxshap` script next to this interpreter (what a user types), else the module."""
    script = Path(sys.executable).parent / "onnxshap"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "onnxshap_cli.main"]


def readme_commands() -> list[tuple[str, int]]:
    """(command, expected exit code) for every runnable `onnxshap` command in the README's bash blocks."""
    found = []
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            command = (
                line.split("&& ", 1)[1] if line.startswith("pip install") and "&& onnxshap" in line else line
            )
            if not command.startswith("onnxshap ") or PLACEHOLDER.search(command.split("#")[0]):
                continue
            after = lines[i + 1] if i + 1 < len(lines) else ""
            code = re.match(r"# exit (\d+)", after)
            found.append((command.split("  #")[0].strip(), int(code.group(1)) if code else 0))
    return found


def test_the_readme_has_runnable_commands_and_states_exit_codes() -> None:
    commands = readme_commands()
    assert commands[0] == ("onnxshap run models/digits_cnn_torch.onnx", 0)  # the main job
    assert {code for _, code in commands} >= {0, 1}  # a passing and a failing gate
    assert sum(c.startswith("onnxshap check ") for c, _ in commands) >= 2


@pytest.mark.slow
@pytest.mark.parametrize(("command", "code"), readme_commands(), ids=lambda c: str(c)[:60])
def test_readme_command_runs_as_written(command: str, code: int, tmp_path: Path) -> None:
    (tmp_path / "models").symlink_to(ROOT / "models")
    args = shlex.split(command)
    done = subprocess.run(
        [*onnxshap(), *args[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == code, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if args[1] == "run":  # the run folder it printed holds a finished run, and the report builds from it
        folder = re.search(r"run folder: (\S+)", done.stdout)
        assert folder, done.stdout[-1000:]
        report = subprocess.run(
            [*onnxshap(), "report", folder.group(1), "--no-pictures"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert report.returncode == 0, report.stderr[-2000:]
    if "--json verdict.json" in command:
        assert (tmp_path / "verdict.json").is_file()
