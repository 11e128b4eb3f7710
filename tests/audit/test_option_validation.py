"""Bad audit options and policy values are refused up front: one line, exit 2, before any work is done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxshap.attacks import DEFAULT_EPS, DEFAULT_MAX_QUERIES
from onnxshap.audit.policy import Policy, PolicyError
from onnxshap_cli.main import cli

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"  # 80 conv filters
CHECK_QUICK = ["--max-evals", "50", "--no-baselines", "--estimator", "truncated"]
QUICK = [*CHECK_QUICK, "--no-progress"]

BAD_OPTIONS = [
    (["--split", "-0.5"], "--split must be a held-out fraction in [0, 1)"),
    (["--split", "nan"], "--split must be a held-out fraction in [0, 1)"),
    (["--split", "1"], "--split must be a held-out fraction in [0, 1)"),
    (["--top-k", "0"], "--top-k must be an integer >= 1, got 0"),
    (["--eps", "0", "--metric", "adversarial"], "--eps must be a number > 0"),
    (["--eps", "-1", "--metric", "robustness"], "--eps must be a number > 0"),
    (["--eps", "nan", "--metric", "adversarial"], "--eps must be a number > 0"),
    (
        ["--eps", "0.1"],
        "--eps set the built-in attack of adversarial/robustness; metric 'accuracy' runs no attack",
    ),
    (["--queries", "0", "--metric", "adversarial"], "--queries must be an integer >= 1, got 0"),
    (["--images", "0"], "--images must be an integer >= 1, got 0"),
    (["--max-seconds", "0"], "--max-seconds must be a number of seconds > 0"),
    (["--max-seconds", "nan"], "--max-seconds must be a number of seconds > 0"),
    (["--max-evals", "0"], "--max-evals must be an integer >= 1, got 0"),
    (["--delta", "0"], "--delta must be a number in (0, 1)"),
    (["--delta", "1"], "--delta must be a number in (0, 1)"),
    (["--delta", "nan"], "--delta must be a number in (0, 1)"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_run_option_is_one_line_before_any_work(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(CNN), "--out", str(out), *QUICK, *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("onnxshap: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "unexpected" not in result.stderr
    assert not (out / "run.json").exists() and result.stdout == ""


def test_bad_option_in_a_real_process_is_one_line(tmp_path):
    cmd = [sys.executable, "-m", "onnxshap_cli.main", "run", str(CNN), "--out", str(tmp_path / "r")]
    proc = subprocess.run([*cmd, "--split", "nan"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--split must be" in proc.stderr


def test_top_k_is_checked_against_the_units(tmp_path):
    for k in ("80", "81"):
        result = CliRunner().invoke(cli, ["run", str(CNN), "--out", str(tmp_path / k), *QUICK, "--top-k", k])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert f"--top-k {k} must be below the number of units analysed (80)" in result.stderr
        assert not (tmp_path / k / "run.json").exists()
    out = tmp_path / "k79"
    result = CliRunner().invoke(cli, ["run", str(CNN), "--out", str(out), *QUICK, "--top-k", "79"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["parameters"]["top_k"] == 79
    few = ["--exclude", "conv[23]"]  # conv1's 16 filters: the default 30 is capped at 15
    result = CliRunner().invoke(cli, ["run", str(CNN), "--out", str(tmp_path / "few"), *QUICK, *few])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "few" / "run.json").read_text())
    assert run["n_units"] == 16 and run["parameters"]["top_k"] == 15 and len(run["top_k"]) == 15


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    with np.load(MODELS / "digits_test.npz") as npz:
        x, y = npz["x"][:20], npz["y"][:20]
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x=x, y=y)
    return path


def test_the_attack_eps_and_queries_used_are_recorded(tmp_path, small_data):
    base = ["run", str(CNN), "--data", str(small_data), "--metric", "adversarial", *QUICK, "--split", "0"]
    out = tmp_path / "default"
    result = CliRunner().invoke(cli, [*base, "--out", str(out), "--queries", "5"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["eps"] == DEFAULT_EPS and config["queries"] == 5
    out = tmp_path / "given"
    result = CliRunner().invoke(cli, [*base, "--out", str(out), "--eps", "0.05"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["eps"] == 0.05 and config["queries"] == DEFAULT_MAX_QUERIES


BAD_POLICIES = [
    ('min_value = "0.9"', "policy min_value must be a number, got '0.9'"),
    ("max_drop = true", "policy max_drop must be a number, got True"),
    ("max_drop = 0.1\ndrop_k = 0", "policy drop_k must be an integer >= 1, got 0"),
    ("max_drop = 0.1\ndrop_k = 2.5", "policy drop_k must be an integer >= 1, got 2.5"),
    ("min_overlap = 1.5", "policy min_overlap must be a fraction in [0, 1], got 1.5"),
    ("max_gap = -0.1", "policy max_gap must be a number in [0, 1]"),
    ("max_gap = 0.1", "the max_gap policy needs --metric fairness (the gap), not 'accuracy'"),
    ("min_overlap = 0.5", "the min_overlap policy needs a baseline run folder (--baseline-run)"),
    ('min_overlap = 0.5\nbaseline_run = "nowhere"', "nowhere is not a run folder (no run.json)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_POLICIES, ids=[t for t, _ in BAD_POLICIES])
def test_bad_policy_file_is_one_line_before_the_audit(tmp_path, text, message):
    policy = tmp_path / "policy.toml"
    policy.write_text(f"[policy]\n{text}\n")
    out = tmp_path / "audit"
    result = CliRunner().invoke(
        cli, ["check", str(CNN), "--policy", str(policy), "--out", str(out), *CHECK_QUICK]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drop-k", "0", "--max-drop", "0.1"], "policy drop_k must be an integer >= 1, got 0"),
        (["--min-overlap", "nan", "--baseline-run", "x"], "policy min_overlap must be a fraction in [0, 1]"),
        (["--max-gap", "2"], "policy max_gap must be a number in [0, 1] (an accuracy gap), got 2.0"),
    ],
)
def test_bad_policy_option_is_one_line_before_the_audit(tmp_path, args, message):
    out = tmp_path / "audit"
    result = CliRunner().invoke(cli, ["check", str(CNN), *args, "--out", str(out), *CHECK_QUICK])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not out.exists()


def test_policy_json_that_is_not_a_table(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("[1, 2]")
    with pytest.raises(Exception, match="must hold a table of bounds"):
        Policy.load(path)
    with pytest.raises(PolicyError, match="drop_k"):
        Policy(drop_k=True)
