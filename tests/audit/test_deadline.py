"""A budget is a deadline for the whole command: estimators, the audit's phases, `run` and `check`.

Games are slowed on purpose (a sleep per coalition, or a custom metric that sleeps) so that a round of
permutations takes far longer than the budget, and the CLI tests run while two other processes keep both
cores busy.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from onnxshap.deadline import DeadlineReached, deadline, remaining
from onnxshap.estimators import estimate
from onnxshap.games import FewHubsGame
from onnxshap.games.function import FunctionGame

REPO = Path(__file__).resolve().parents[2]
CNN = REPO / "models" / "digits_cnn_torch.onnx"
DATA = REPO / "models" / "digits_test.npz"
BASE = FewHubsGame.make(n_players=40, n_hubs=4, seed=0, chance=0.0)


def slow_game(seconds_per_coalition: float = 0.003) -> FunctionGame:
    def fn(coalitions: np.ndarray) -> np.ndarray:
        time.sleep(seconds_per_coalition * len(coalitions))
        return BASE(coalitions)

    return FunctionGame(fn, BASE.n_players, batch_size=4, value_range=1.0)


def test_deadline_nests_to_the_earlier_end() -> None:
    assert remaining() is None
    with deadline(10.0):
        with deadline(100.0):
            assert remaining() is not None and remaining() <= 10.0
        with deadline(0.0), pytest.raises(DeadlineReached):
            slow_game()(np.ones((1, BASE.n_players), bool))
    assert remaining() is None


@pytest.mark.parametrize("method", ["permutation", "truncated", "tmab", "loo"])
def test_estimators_end_on_time_and_keep_only_complete_steps(method: str) -> None:
    game = slow_game()
    params = {} if method == "loo" else {"permutations_per_round": 64}  # a round: ~2 s
    t = time.perf_counter()
    res = estimate(game, method, seed=1, max_seconds=1.0, progress=False, **params)
    wall = time.perf_counter() - t
    assert wall < 1.0 + 0.2  # at most one chunk of 4 coalitions (12 ms) late, plus bookkeeping
    if method != "loo":  # loo's 42 evaluations fit
        assert res.metadata["stop_reason"] == "max_seconds" and not res.metadata["converged"]
    # what the result counts is what its values were computed from; a cut step is reported, not used
    assert res.evaluations + res.metadata["discarded_evaluations"] == game.evaluations


def test_cut_permutation_run_equals_a_run_of_its_complete_permutations() -> None:
    game = slow_game()
    res = estimate(game, "permutation", seed=3, max_seconds=1.0, permutations_per_round=64, progress=False)
    done = res.metadata["permutations"]
    assert done >= 1
    again = estimate(
        BASE, "permutation", seed=3, n_permutations=done, permutations_per_round=64, progress=False
    )
    np.testing.assert_array_equal(res.values, again.values)


def test_an_outer_deadline_bounds_an_estimate_without_its_own_budget() -> None:
    t = time.perf_counter()
    with deadline(1.0):
        res = estimate(slow_game(), "permutation", seed=0, n_permutations=10_000, progress=False)
    assert time.perf_counter() - t < 1.2 and res.metadata["stop_reason"] == "max_seconds"


def test_budget_gone_before_v_all_is_one_clear_error() -> None:
    with deadline(0.0), pytest.raises(DeadlineReached, match="time budget"):
        estimate(slow_game(), "permutation", seed=0, progress=False)


# -- the CLI, on a busy machine -----------------------------------------------------------------------

SLOW_METRIC = """
import time
import numpy as np

value_range = 1.0

def accuracy(outputs, labels, groups):
    time.sleep(0.02 * len(outputs))  # a slow model: 20 ms per coalition
    return (outputs.argmax(-1) == labels[None, :]).mean(axis=1)
"""


def _burn() -> None:
    while True:
        pass


@pytest.fixture()
def busy_machine():
    """Two processes that keep both cores busy while the test runs."""
    procs = [multiprocessing.get_context("spawn").Process(target=_burn, daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    yield
    for p in procs:
        p.kill()
        p.join()


def _onnxshap(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ)
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "onnxshap_cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, time.monotonic() - t


@pytest.mark.slow
def test_run_max_seconds_bounds_the_whole_command_on_a_busy_machine(tmp_path: Path, busy_machine) -> None:
    (tmp_path / "slow.py").write_text(SLOW_METRIC)
    budget = 20.0
    proc, wall = _onnxshap(
        "run", str(CNN), "--data", str(DATA), "--metric", f"custom:{tmp_path / 'slow.py'}:accuracy",
        "--out", "run", "--max-seconds", str(budget), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert wall <= max(1.05 * budget, budget + 10), wall  # the bound, interpreter start included
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    plan = info["plan"]
    assert info["wall_seconds"] <= budget and plan["max_seconds"] == budget
    assert "estimation" in plan["seconds"] and plan["budgets"]["estimation"] < budget
    assert "plan for 20 s" in proc.stderr
    for name, why in plan["skipped"].items():  # what did not fit is named, on the console and in run.json
        assert f"{name} skipped" in proc.stderr and why
    curves = json.loads((tmp_path / "run" / "curves.json").read_text())
    assert "shapley" in curves["curves"] and curves["skipped"] == plan["skipped"]


@pytest.mark.slow
def test_check_max_seconds_ends_in_time_and_says_inconclusive(tmp_path: Path, busy_machine) -> None:
    (tmp_path / "slow.py").write_text(SLOW_METRIC.replace("0.02 *", "0.2 *"))  # 200 ms per coalition
    budget = 12.0
    args = [
        "check", str(CNN), "--data", str(DATA), "--metric", f"custom:{tmp_path / 'slow.py'}:accuracy",
        "--max-drop", "0.5", "--drop-k", "3", "--max-seconds", str(budget), "--no-baselines",
    ]  # fmt: skip
    proc, wall = _onnxshap(*args, "--out", "c1", cwd=tmp_path)
    assert wall <= max(1.05 * budget, budget + 10), wall
    assert proc.returncode in (0, 1, 3), proc.stderr[-2000:]
    if proc.returncode == 3:
        assert "INCONCLUSIVE" in proc.stdout and "exit 3" in proc.stdout
        proc2, _ = _onnxshap(*args, "--out", "c2", "--inconclusive", "fail", cwd=tmp_path)
        assert proc2.returncode in (0, 1)  # never 3 once the policy says what inconclusive means


def test_progress_lines_when_not_on_a_terminal(monkeypatch, capsys) -> None:
    import onnxshap.progress

    monkeypatch.setattr(onnxshap.progress, "EVERY_SECONDS", 0.2)
    estimate(slow_game(), "permutation", seed=0, max_seconds=1.0, permutations_per_round=2)  # progress=None
    lines = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("onnxshap permutation:")
    ]
    assert len(lines) >= 2 and all("evaluations in" in line and "ETA" in line for line in lines)
    estimate(slow_game(), "permutation", seed=0, max_seconds=0.5, permutations_per_round=2, progress=False)
    assert "onnxshap permutation:" not in capsys.readouterr().err


def test_long_audit_phases_announce_an_eta(capsys) -> None:
    from onnxshap.audit.plan import AuditPlan

    plan = AuditPlan(None, baselines=True)
    assert plan.run("slow baseline", lambda: 7, needs_seconds=60.0) == 7
    err = capsys.readouterr().err
    assert "slow baseline: ~60 s expected (ETA" in err and "slow baseline: done in" in err


def test_check_json_verdicts_pass_and_fail(tmp_path: Path) -> None:
    """The README's two gates on the shipped model: exit 0 and exit 1, with the JSON verdict."""
    from click.testing import CliRunner

    from onnxshap_cli.main import cli

    args = ["check", str(CNN), "--data", str(DATA), "--max-evals", "400", "--no-baselines"]
    passing = CliRunner().invoke(
        cli, [*args, "--min-value", "0.95", "--json", str(tmp_path / "v.json"), "--out", str(tmp_path / "a")]
    )
    assert passing.exit_code == 0, passing.output
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["verdict"] == "pass" and verdict["exit_code"] == 0
    (policy,) = verdict["policies"]
    assert policy["name"] == "min_value" and policy["measured"] >= 0.95 and policy["bound"] == 0.95
    assert verdict["budget"]["evaluations"] > 0 and verdict["certainty"]["guarantee"] == "simultaneous"
    failing = CliRunner().invoke(
        cli, [*args, "--max-drop", "0.2", "--drop-k", "10", "--json", "-", "--out", str(tmp_path / "b")]
    )
    assert failing.exit_code == 1
    doc = json.loads(failing.output[failing.output.index("{") :])
    assert doc["verdict"] == "fail" and doc["policies"][0]["measured"] > 0.2


def test_check_without_a_complete_round_is_inconclusive(tmp_path: Path) -> None:
    """A ranking policy cannot be tested on values that rest on no sample: exit 3, never a pass."""
    (tmp_path / "slow.py").write_text(SLOW_METRIC.replace("0.02 *", "0.5 *"))  # a walk of 80 units: ~40 s
    proc, wall = _onnxshap(
        "check", str(CNN), "--data", str(DATA), "--metric", f"custom:{tmp_path / 'slow.py'}:accuracy",
        "--max-drop", "0.9", "--drop-k", "3", "--max-seconds", "12", "--no-baselines", "--out", "c",
        "--json", "v.json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    assert "completed no round" in proc.stdout and wall <= 22
    assert json.loads((tmp_path / "v.json").read_text())["verdict"] == "inconclusive"
