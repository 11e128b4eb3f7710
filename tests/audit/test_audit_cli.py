"""The audit workflow end to end through the CLI: run, prune, check (click's runner and real subprocesses)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from onnxshap import instrument
from onnxshap.estimators.checkpoint import load_checkpoint
from onnxshap_cli.main import cli
from tests.killing import kill_after_first_checkpoint, sigint_as_in_a_terminal

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cnn"
    result = CliRunner().invoke(
        cli, ["run", str(CNN), "--out", str(out), "--max-evals", "2500", "--top-k", "10", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_run_folder_contract(finished_run):
    out, output = finished_run
    assert "run folder:" in output and "removal-curve area" in output
    assert "certain (simultaneous guarantee)" in output and "undecided" in output
    run = json.loads((out / "run.json").read_text())
    for key in (
        "model",
        "model_sha256",
        "metric",
        "v_all",
        "v_empty",
        "estimator",
        "parameters",
        "seed",
        "provider",
        "evaluations",
        "wall_seconds",
        "onnxshap_version",
        "top_k",
        "curves",
    ):
        assert key in run, key
    assert run["status"] == "finished" and run["provider"] == "cpu" and len(run["top_k"]) == 10
    assert run["evaluations"] >= 2500 and run["parameters"]["max_evals"] == 2500
    with open(out / "shapley.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["unit", "layer", "channel", "value", "ci_low", "ci_high", "samples", "decision"]
    assert {r["decision"] for r in rows} <= {"1", "0", "-1"}
    assert sum(run["decisions"].values()) == len(rows) and run["guarantee"] == "simultaneous"
    assert run["decisions"]["in"] == sum(r["decision"] == "1" for r in rows)
    values = [float(r["value"]) for r in rows]
    assert len(rows) == instrument(CNN).n_units and values == sorted(values, reverse=True)
    assert all(float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"]) for r in rows)
    assert run["top_k"] == [r["unit"] for r in rows[:10]] or set(run["top_k"]) <= {
        r["unit"] for r in rows[:15]
    }


def test_shapley_beats_random_and_matches_loo(finished_run):
    """The paper's central claim on the digits CNN: the Shapley top-10 hurts more than random and LOO."""
    out, _ = finished_run
    curves = json.loads((out / "curves.json").read_text())
    at10 = {name: values[curves["steps"].index(10)] for name, values in curves["curves"].items()}
    assert at10["shapley"] < at10["random"] - 0.2
    assert at10["shapley"] <= at10["loo"]
    run = json.loads((out / "run.json").read_text())
    assert run["curves"]["shapley"] < run["curves"]["random"]
    assert run["curves"]["negative"] > run["curves"]["shapley"]


def test_finished_run_is_never_overwritten(finished_run):
    out, _ = finished_run
    before = (out / "shapley.csv").read_bytes()
    result = CliRunner().invoke(cli, ["run", str(CNN), "--out", str(out), "--max-evals", "100"])
    assert result.exit_code == 2 and "holds a finished run" in result.output
    assert (out / "shapley.csv").read_bytes() == before


def test_prune_top_and_units(finished_run, tmp_path):
    out, _ = finished_run
    repaired = tmp_path / "pruned.onnx"
    result = CliRunner().invoke(
        cli, ["prune", str(CNN), "--run", str(out), "--top", "3", "-o", str(repaired)]
    )
    assert result.exit_code == 0, result.output
    # worded by intent: --top is an ablation of what the model relies on, not a repair
    assert (
        "original" in result.output and "top 3 ablated" in result.output and "repaired" not in result.output
    )
    assert "an ablation, not a repair" in result.output
    model = onnx.load(str(repaired))
    assert [i.name for i in model.graph.input] == ["input"]  # no mask inputs: loads in stock ORT
    session = ort.InferenceSession(str(repaired), providers=["CPUExecutionProvider"])
    with np.load(MODELS / "digits_test.npz") as npz:
        x = npz["x"][:40]
    got = session.run(None, {"input": x})[0]
    inst = instrument(CNN, optimize=False)
    with open(out / "shapley.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = np.ones(inst.n_units, bool)
    keep[[inst.units.index_of(r["unit"]) for r in rows[:3]]] = False
    np.testing.assert_allclose(got, inst.evaluate(keep[None], x)["logits"][0], rtol=1e-4, atol=1e-4)
    by_id = CliRunner().invoke(
        cli,
        ["prune", str(CNN), "--run", str(out), "--units", rows[0]["unit"], "-o", str(tmp_path / "one.onnx")],
    )
    assert by_id.exit_code == 0 and f"removed 1 units: {rows[0]['unit']}" in by_id.output
    assert "-> pruned" in by_id.output and "ablation" not in by_id.output


def test_prune_refuses_other_model(finished_run, tmp_path):
    out, _ = finished_run
    result = CliRunner().invoke(
        cli,
        [
            "prune",
            str(MODELS / "digits_resnet_torch.onnx"),
            "--run",
            str(out),
            "--top",
            "2",
            "-o",
            str(tmp_path / "x.onnx"),
        ],
    )
    assert result.exit_code == 2 and "not the model audited" in result.output
    assert not (tmp_path / "x.onnx").exists()


def test_check_policies_pass_and_fail(finished_run, tmp_path):
    out, _ = finished_run
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\nmin_value = 0.9\nmin_overlap = 0.3\n")
    ok = CliRunner().invoke(
        cli,
        [
            "check",
            str(CNN),
            "--policy",
            str(policy),
            "--baseline-run",
            str(out),
            "--out",
            str(tmp_path / "c1"),
            "--no-baselines",
            "--top-k",
            "10",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "PASS min_value" in ok.output and "PASS min_overlap" in ok.output
    bad = CliRunner().invoke(
        cli,
        [
            "check",
            str(CNN),
            "--max-drop",
            "0.01",
            "--drop-k",
            "5",
            "--out",
            str(tmp_path / "c2"),
            "--no-baselines",
        ],
    )
    assert bad.exit_code == 1 and "FAIL max_drop" in bad.output and "over by" in bad.output
    checked = json.loads((tmp_path / "c2" / "run.json").read_text())  # no budget given: 30 per player
    assert checked["parameters"]["max_evals"] == 30 * checked["n_players"]
    err = CliRunner().invoke(cli, ["check", str(CNN), "--out", str(tmp_path / "c3")])
    assert err.exit_code == 2 and "no policy given" in err.output


def _run_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "onnxshap_cli.main", "run", str(CNN), *args]


# About 10 rounds of 16 truncated walks: an interruption lands well before the end on any machine.
RESUMABLE = ["--estimator", "truncated", "--max-evals", "8000", "--images", "32"]
RESUMABLE += ["--no-baselines", "--seed", "3"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    reference = tmp_path_factory.mktemp("ref") / "reference"
    done = subprocess.run(
        _run_cmd("--out", str(reference), *RESUMABLE, "--no-progress"), capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return reference


def _resume_equals(folder: Path, reference: Path) -> None:
    resumed = subprocess.run(
        _run_cmd("--out", str(folder), "--resume", *RESUMABLE, "--no-progress"),
        capture_output=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (folder / "shapley.csv").read_text() == (reference / "shapley.csv").read_text()


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, monkeypatch, uninterrupted):
    """A real process killed with SIGKILL mid-run resumes to exactly the uninterrupted result."""
    killed = tmp_path / "killed"
    args = ["-m", "onnxshap_cli.main", "run", str(CNN), "--out", str(killed), *RESUMABLE, "--no-progress"]
    args += ["--checkpoint-seconds", "0.001"]  # a checkpoint after every piece of a round
    kill_after_first_checkpoint(args, killed / "checkpoint", settle=0.05)  # asserts it died of the kill
    assert load_checkpoint(killed / "checkpoint")[2]["evaluations"] < 8000  # killed mid-run
    assert not (killed / "shapley.csv").exists()
    again = subprocess.run(
        _run_cmd("--out", str(killed), *RESUMABLE, "--no-progress"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 2 and "--resume" in again.stderr
    _resume_equals(killed, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_checkpoints_then_resume_equals_uninterrupted(tmp_path, sig, uninterrupted):
    """Ctrl-C or SIGTERM long before the periodic checkpoint (30 s): one is written, and resuming from it
    gives the uninterrupted result; the promise to resume is printed only then."""
    out = tmp_path / "stopped"
    proc = subprocess.Popen(
        _run_cmd("--out", str(out), *RESUMABLE, "--progress"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_as_in_a_terminal,
    )
    err = bytearray()

    def read() -> None:
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            err.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 300
    while b"onnxshap truncated" not in err:  # the progress bar: the estimator has started
        assert proc.poll() is None, err.decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    reader.join()
    message = err.decode().rsplit("\r", 1)[-1]
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), message
    assert "continue with: onnxshap run" in message and "--resume" in message
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert load_checkpoint(out / "checkpoint")[2]["evaluations"] < 8000
    _resume_equals(out, uninterrupted)


def test_bad_inputs_one_line_exit_2(tmp_path):
    cases = [
        ["run", str(tmp_path / "missing.onnx")],
        ["run", str(CNN), "--data", str(tmp_path / "nothing.npz"), "--out", str(tmp_path / "a")],
        ["run", str(CNN), "--data", str(MODELS / "digits_test_nhwc.npz"), "--out", str(tmp_path / "b")],
        ["run", str(CNN), "--metric", "f1", "--out", str(tmp_path / "c")],
        ["run", str(CNN), "--provider", "tpu", "--out", str(tmp_path / "d")],
        ["run", str(MODELS / "digits_resnet_torch.onnx"), "--out", str(tmp_path / "e"), "--resume"],
    ]
    for args in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "onnxshap_cli.main", *args], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("onnxshap: error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_run_records_the_fast_path_and_takes_speed_and_bound_options(tmp_path):
    base = ["run", str(CNN), "--max-evals", "600", "--top-k", "5", "--no-baselines", "--no-progress"]
    out = tmp_path / "t"
    result = CliRunner().invoke(cli, [*base, "--out", str(out), "--bound", "student-t", "--stack", "2"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["bound"] == "student-t"
    assert run["fast_path"] == {"cut": True, "prefix_ops": 2, "reduction": "argmax", "stack": 2}
    plain = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "p"), "--no-fast-path"])
    assert plain.exit_code == 0, plain.output
    assert json.loads((tmp_path / "p" / "run.json").read_text())["fast_path"] is None
    bad = CliRunner().invoke(
        cli, [*base, "--out", str(tmp_path / "b"), "--estimator", "loo", "--bound", "student-t"]
    )
    assert bad.exit_code == 2 and "unknown parameter(s) for method='loo': bound" in bad.output
    bad = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "c"), "--provider-option", "magic=1"])
    assert bad.exit_code == 2 and "unknown CUDA provider option 'magic'" in bad.output


def test_run_takes_loo_control_and_records_it(tmp_path):
    base = ["run", str(CNN), "--max-evals", "600", "--top-k", "5", "--no-baselines", "--no-progress"]
    out = tmp_path / "lc"
    result = CliRunner().invoke(cli, [*base, "--out", str(out), "--loo-control"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["loo_control"] is True
    bad = CliRunner().invoke(
        cli, [*base, "--out", str(tmp_path / "b"), "--estimator", "loo", "--loo-control"]
    )
    assert bad.exit_code == 2 and "unknown parameter(s) for method='loo': loo_control" in bad.output


def test_run_takes_focus_and_records_it(tmp_path):
    base = ["run", str(CNN), "--max-evals", "1500", "--top-k", "5", "--no-baselines", "--no-progress"]
    out = tmp_path / "f"
    result = CliRunner().invoke(cli, [*base, "--out", str(out), "--focus", "4"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["focus"] == 4
    assert "focus: 4 contenders" in result.output and "units valued by the draws" in result.output
    short = CliRunner().invoke(
        cli, [*base[:2], "--max-evals", "90", *base[4:], "--out", str(tmp_path / "s"), "--focus", "4"]
    )
    assert short.exit_code == 0 and "focus: no draws within the budget" in short.output, short.output
    bad = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "b"), "--focus", "-1"])
    assert bad.exit_code == 2 and "--focus" in bad.output
