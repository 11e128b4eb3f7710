"""A run folder is the user's record: one writer, never overwritten, never mixed (real processes)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from onnxshap.audit.runfolder import LOCK_NAME, RunFolder, RunFolderBusy
from onnxshap_cli.main import cli
from onnxshap_cli.run_command import default_out
from tests.killing import REPO, kill_after_first_checkpoint

MODELS = REPO / "models"
CNN = MODELS / "digits_cnn_torch.onnx"
pytestmark = pytest.mark.slow
QUICK = [
    "--estimator",
    "permutation",
    "--max-evals",
    "300",
    "--top-k",
    "3",
    "--no-baselines",
    "--no-progress",
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "onnxshap_cli.main", *args]


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("onnxshap: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_a_second_writer_is_refused_and_kill_9_frees_the_folder(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        _cli("run", str(CNN), "--out", str(out), "--estimator", "permutation", "--max-evals", "1000000"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").exists():  # written with the lock held
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(
            _cli("run", str(CNN), "--out", str(out), *QUICK, "--metric", "loss"),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        _one_line_error(second, "being written by another onnxshap process", f"pid {first.pid}")
        with pytest.raises(RunFolderBusy), RunFolder(out).locked():
            pass
        report = CliRunner().invoke(cli, ["report", str(out), "--no-pictures"])  # report.html: a writer too
        assert report.exit_code == 2 and "being written by another onnxshap process" in report.output
        assert json.loads((out / "run.json").read_text())["metric"] == "accuracy"
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    with RunFolder(out).locked():  # the kernel dropped the dead process's lock
        pass


def test_default_folder_names_never_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {default_out(CNN, "accuracy") for _ in range(3)}  # same second
    assert len(names) == 3 and all(p.is_dir() for p in names)
    procs = [
        subprocess.Popen(
            _cli("run", str(CNN), *QUICK), cwd=tmp_path / "runs", env=_env(), stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    runs = [p for p in (tmp_path / "runs" / "runs").iterdir() if (p / "run.json").exists()]
    assert len(runs) == 2
    assert all(json.loads((p / "run.json").read_text())["status"] == "finished" for p in runs)


def test_out_that_holds_other_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "run.json").write_text('{"my": "notes"}')
    (out / "shapley.csv").write_text("precious\n")
    proc = subprocess.run(
        _cli("run", str(CNN), "--out", str(out), *QUICK),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line_error(proc, "is not empty", "never overwritten")
    assert (out / "run.json").read_text() == '{"my": "notes"}'
    assert (out / "shapley.csv").read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "run.json", "shapley.csv"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(cli, ["run", str(CNN), "--out", str(empty), *QUICK]).exit_code == 0


def _unfinished_run(tmp_path, monkeypatch) -> Path:
    """A run of the digits CNN killed (-9) after its first checkpoint."""
    out = tmp_path / "unfinished"
    args = ["-m", "onnxshap_cli.main", "run", str(CNN), "--out", str(out), "--estimator", "permutation"]
    args += ["--checkpoint-seconds", "0.01"]
    kill_after_first_checkpoint(
        [*args, "--max-evals", "1000000", "--no-progress"], out / "checkpoint", settle=0
    )
    return out


def test_resume_refuses_other_weights_and_other_data(tmp_path, monkeypatch):
    out = _unfinished_run(tmp_path, monkeypatch)
    model = onnx.load(str(CNN))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[0] *= 1 + 1e-6  # same architecture, same accuracy, other weights
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    resume = ["--out", str(out), "--resume", "--estimator", "permutation", "--max-evals", "1000000"]
    resume += ["--data", str(MODELS / "digits_test.npz")]
    proc = subprocess.run(
        _cli("run", str(other), *resume), env=_env(), capture_output=True, text=True, timeout=600
    )
    _one_line_error(proc, "cannot resume", "model_sha256=")
    with np.load(MODELS / "digits_test.npz") as npz:
        data = dict(npz)
    data["x"] = data["x"].copy()
    data["x"][0, 0, 0, 0] += 1e-3  # one pixel of one image
    np.savez(tmp_path / "other.npz", **data)
    proc = subprocess.run(
        _cli("run", str(CNN), *resume[:-1], str(tmp_path / "other.npz")),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    _one_line_error(proc, "cannot resume", "data_fingerprint=")
    assert not (out / "shapley.csv").exists()


FAILING_METRIC = """
import os
import numpy as np

def accuracy_unless_held_out(outputs, labels, groups):
    if os.environ.get("FAIL_HELD_OUT") and len(labels) == 216:  # the held-out split of --split 0.4
        raise RuntimeError("boom")
    return (outputs.argmax(-1) == labels).mean(-1)
"""


def test_a_late_failure_is_recorded_and_the_run_resumes(tmp_path, monkeypatch):
    metric = tmp_path / "metric.py"
    metric.write_text(FAILING_METRIC)
    out = tmp_path / "run"
    args = [
        "run",
        str(CNN),
        "--out",
        str(out),
        "--split",
        "0.4",
        "--metric",
        f"custom:{metric}:accuracy_unless_held_out",
    ]
    args += ["--estimator", "permutation", "--max-evals", "300", "--no-progress"]
    monkeypatch.setenv("FAIL_HELD_OUT", "1")
    failed = CliRunner().invoke(cli, args)
    assert failed.exit_code == 2 and "boom" in failed.output
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "RuntimeError: boom" in run["error"]
    again = CliRunner().invoke(cli, args)
    assert (
        again.exit_code == 2
        and "unfinished run (status failed" in again.output
        and "--resume" in again.output
    )
    monkeypatch.delenv("FAIL_HELD_OUT")
    resumed = CliRunner().invoke(cli, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and "error" not in run


def test_run_on_external_data_from_another_directory_finishes(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    onnx.save(onnx.load(str(CNN)), str(src / "cnn.onnx"), save_as_external_data=True, location="cnn.data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        _cli(
            "run", str(src / "cnn.onnx"), "--data", str(MODELS / "digits_test.npz"), "--out", "r", *QUICK[:-2]
        ),
        cwd=elsewhere,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads((elsewhere / "r" / "run.json").read_text())
    assert run["status"] == "finished" and "weight" in run["curves"]
    assert set(run["model_data_sha256"]) == {"cnn.data"}


def test_every_file_of_a_run_folder_has_the_users_mode(tmp_path):
    """run.json, results and checkpoint are created like any file of the user's (0666 less the umask),
    not mkstemp's 0600: a run folder shared with a group is readable by it."""
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["run", str(CNN), "--out", str(out), *QUICK]).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    files = [p for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME]
    assert {"run.json", "shapley.csv", "result.npz", "checkpoint.npz"} <= {p.name for p in files}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o666 & ~umask for p in files}
