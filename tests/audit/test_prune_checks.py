"""prune reads a run folder it must be able to trust: its files agree, and nothing in it is ever run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from onnxshap_cli.main import cli

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"
QUICK = [
    "--estimator",
    "permutation",
    "--max-evals",
    "400",
    "--top-k",
    "3",
    "--no-baselines",
    "--no-progress",
]

pytestmark = pytest.mark.slow

MARKING_METRIC = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("this file was run")

def accuracy(outputs, labels, groups):
    return (outputs.argmax(-1) == labels).mean(-1)
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished runs of the digits CNN (seeds 0 and 1) and one with a custom metric."""
    base = tmp_path_factory.mktemp("runs")
    metric = base / "code" / "metric.py"
    metric.parent.mkdir()
    metric.write_text(MARKING_METRIC)
    made = {}
    for name, extra in (
        ("a", ["--seed", "0"]),
        ("b", ["--seed", "1"]),
        ("custom", ["--metric", f"custom:{metric}:accuracy"]),
    ):
        done = CliRunner().invoke(cli, ["run", str(CNN), "--out", str(base / name), *QUICK, *extra])
        assert done.exit_code == 0, done.output
        made[name] = base / name
    (metric.parent / "IMPORTED").unlink()
    made["metric"] = metric
    return made


def _prune(run: Path, out: Path, *extra: str):
    return CliRunner().invoke(
        cli, ["prune", str(CNN), "--run", str(run), "--top", "3", "-o", str(out), *extra]
    )


@pytest.mark.parametrize(
    "swap, words",
    [
        (["result.npz", "result.json"], "ranks the units differently"),  # another run's values
        (["shapley.csv"], "ranks the units differently"),
        (["units.json"], "units.json"),  # another model's unit table
    ],
)
def test_prune_refuses_a_folder_whose_files_disagree(runs, tmp_path, swap, words):
    mixed = tmp_path / "mixed"
    shutil.copytree(runs["a"], mixed)
    for name in swap:
        if name == "units.json":
            other = tmp_path / "other"
            done = CliRunner().invoke(
                cli, ["run", str(MODELS / "digits_resnet_torch.onnx"), "--out", str(other), *QUICK]
            )
            assert done.exit_code == 0, done.output
            shutil.copy(other / name, mixed / name)
        else:
            shutil.copy(runs["b"] / name, mixed / name)
    done = _prune(mixed, tmp_path / "pruned.onnx")
    assert done.exit_code == 2, done.output
    assert done.output.startswith("onnxshap: error: ") and done.output.count("\n") == 1, done.output
    assert "does not hold one run" in done.output and words in done.output
    assert not (tmp_path / "pruned.onnx").exists()


def test_prune_refuses_edited_values(runs, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(runs["a"], edited)
    lines = (edited / "shapley.csv").read_text().splitlines()
    first = lines[1].split(",")
    first[3] = repr(float(first[3]) + 1.0)
    lines[1] = ",".join(first)
    (edited / "shapley.csv").write_text("\n".join(lines) + "\n")
    done = _prune(edited, tmp_path / "pruned.onnx")
    assert done.exit_code == 2 and "values differ" in done.output, done.output
    assert _prune(runs["a"], tmp_path / "ok.onnx").exit_code == 0


def test_reading_a_run_folder_never_runs_its_custom_metric(runs, tmp_path):
    marker = runs["metric"].with_name("IMPORTED")
    crafted = tmp_path / "crafted"  # an innocent-looking run folder that names someone's code
    shutil.copytree(runs["a"], crafted)
    run = json.loads((crafted / "run.json").read_text())
    run["metric"] = run["config"]["metric"] = f"custom:{runs['metric']}:accuracy"
    (crafted / "run.json").write_text(json.dumps(run))
    done = _prune(crafted, tmp_path / "p1.onnx")
    assert done.exit_code == 0, done.output
    assert "not measured" in done.output and "--metric" in done.output
    assert (tmp_path / "p1.onnx").is_file() and not marker.exists()
    measured = _prune(crafted, tmp_path / "p2.onnx", "--metric", "accuracy")
    assert measured.exit_code == 0 and "accuracy on the held-out split: original" in measured.output
    assert not marker.exists()
    report = CliRunner().invoke(cli, ["report", str(crafted), "--no-pictures"])
    assert report.exit_code == 0, report.output
    check = CliRunner().invoke(
        cli,
        [
            "check",
            str(CNN),
            "--out",
            str(tmp_path / "c"),
            "--baseline-run",
            str(crafted),
            "--min-overlap",
            "0",
            "--max-evals",
            "300",
            "--no-baselines",
        ],
    )
    assert check.exit_code == 0, check.output
    assert not marker.exists()


def test_prune_measures_a_custom_metric_given_on_the_command_line(runs, tmp_path):
    marker = runs["metric"].with_name("IMPORTED")
    spec = f"custom:{runs['metric']}:accuracy"
    done = _prune(runs["custom"], tmp_path / "p.onnx")
    assert done.exit_code == 0 and "not measured" in done.output and not marker.exists()
    done = _prune(runs["custom"], tmp_path / "q.onnx", "--metric", spec)
    assert done.exit_code == 0, done.output
    assert f"{spec} on the held-out split: original" in done.output and marker.exists()
    marker.unlink()
