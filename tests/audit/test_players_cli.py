"""`run/prune/report/check --players ...` end to end on the digits CNN fixture."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxshap_cli.main import cli

MODELS = Path(__file__).resolve().parents[2] / "models"
CNN = MODELS / "digits_cnn_torch.onnx"


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def layers_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "layers"
    result = invoke("run", CNN, "--players", "layers", "--estimator", "exact", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result.output


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "shapley.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_exact_layer_values_over_the_whole_valuation_split(layers_run) -> None:
    """--estimator exact values each layer exactly over all valuation items (whatever --images says)."""
    from onnxshap import instrument
    from onnxshap.data import load_data
    from onnxshap.metrics import get_metric

    out, output = layers_run
    assert "top players (layers)" in output
    inst = instrument(CNN, provider="cpu")
    metas = [m for m in inst.evaluator.session.get_inputs() if m.name in inst.input_names]
    data = load_data(MODELS / "digits_test.npz", input_metas=metas)
    valuation, _ = data.split(0.5, seed=0)
    metric = get_metric("accuracy")
    spans = [(0, 16), (16, 48), (48, 80)]

    def v(c) -> float:
        keep = np.zeros(80, bool)
        for on, (a, b) in zip(c, spans, strict=True):
            keep[a:b] = on
        logits = inst.evaluate(keep[None], valuation.inputs)["logits"]
        return float(metric(logits, valuation.labels, None)[0])

    phi = np.zeros(3)
    for i in range(3):
        for c in itertools.product([False, True], repeat=3):
            if c[i]:
                continue
            s = sum(c)
            with_i = list(c)
            with_i[i] = True
            phi[i] += math.factorial(s) * math.factorial(2 - s) / 6 * (v(with_i) - v(c))
    rows = {r["unit"]: r for r in _rows(out)}
    got = [float(rows[name]["value"]) for name in ("/conv1/Conv", "/conv2/Conv", "/conv3/Conv")]
    np.testing.assert_allclose(got, phi, atol=1e-9, rtol=0)
    assert rows["/conv2/Conv"]["members"] == "/conv2/Conv:0-31" and rows["/conv2/Conv"]["channel"] == ""
    run = json.loads((out / "run.json").read_text())
    assert run["players"] == "layers" and run["n_players"] == 3 and run["removal"] == "zero"
    assert json.loads((out / "players.json").read_text())["n_players"] == 3


def test_prune_removes_whole_layers_and_report_builds(layers_run, tmp_path) -> None:
    out, _ = layers_run
    top = _rows(out)[0]["unit"]
    result = invoke("prune", CNN, "--run", out, "--top", "1", "-o", tmp_path / "p.onnx")
    assert result.exit_code == 0, result.output
    n = {"/conv1/Conv": 16, "/conv2/Conv": 32, "/conv3/Conv": 32}[top]
    assert f"removed {n} units" in result.output
    named = invoke("prune", CNN, "--run", out, "--units", "/conv1/Conv", "-o", tmp_path / "q.onnx")
    assert named.exit_code == 0 and "removed 16 units" in named.output, named.output
    report = invoke("report", out, "--no-pictures")
    assert report.exit_code == 0, report.output
    page = (out / "report.html").read_text()
    assert "3 players (layers)" in page and "(several)" not in page


def test_groups_file_run_and_check(tmp_path) -> None:
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"early": ["/conv1/Conv"], "late": ["/conv3/Conv:0-15", "/conv2/Conv:0"]}))
    out = tmp_path / "g"
    result = invoke(
        "check", CNN, "--players", f"groups:{groups}", "--estimator", "permutation", "--max-evals", "40",
        "--max-drop", "1.0", "--drop-k", "1", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PASS max_drop" in result.output and "removing the top 1 units" in result.output
    rows = _rows(out)
    assert sorted(r["unit"] for r in rows) == ["early", "late"]
    late = next(r for r in rows if r["unit"] == "late")
    assert late["members"] == "/conv2/Conv:0;/conv3/Conv:0-15" and late["layer"] == ""
    assert json.loads((out / "players.json").read_text())["fixed_present_units"] == 80 - 16 - 17


def test_bad_player_options_write_nothing(tmp_path) -> None:
    out = tmp_path / "bad"
    result = invoke("run", CNN, "--players", "heads", "--out", out)
    assert result.exit_code == 2 and "unknown --players" in result.output
    assert not out.exists()
    result = invoke("run", CNN, "--lesion-run", tmp_path, "--out", out)
    assert result.exit_code == 2 and "--lesion-top" in result.output


def test_lesion_values_are_those_of_the_reduced_game(layers_run, tmp_path) -> None:
    """--lesion-run RUN --lesion-top 1: the top layer is removed for good; the other two are valued exactly
    in the game where it is always absent (2 players: phi_a = (v(a) - v(0) + v(ab) - v(b)) / 2)."""
    from onnxshap.audit.runfolder import RunFolder
    from onnxshap.audit.runner import config_from_run, replay_games

    first, _ = layers_run
    top = _rows(first)[0]["unit"]
    out = tmp_path / "lesioned"
    result = invoke(
        "run", CNN, "--players", "layers", "--estimator", "exact", "--lesion-run", first, "--lesion-top", "1",
        "--out", out, "--no-progress", "--no-baselines",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"lesioned: {top}" in result.output
    run = json.loads((out / "run.json").read_text())
    assert run["lesion"] == [top] and run["n_players"] == 2
    rows = {r["unit"]: float(r["value"]) for r in _rows(out)}
    assert top not in rows
    folder = RunFolder(out)
    _, game, _ = replay_games(config_from_run(run), folder, provider="cpu")
    players = folder.load_players()
    spans = {"/conv1/Conv": range(0, 16), "/conv2/Conv": range(16, 48), "/conv3/Conv": range(48, 80)}
    a, b = players.names

    def v(*present: str) -> float:
        keep = np.zeros(80, bool)
        for name in present:
            keep[list(spans[name])] = True
        return float(game(keep[None])[0])

    want_a = (v(a) - v() + v(a, b) - v(b)) / 2
    want_b = (v(b) - v() + v(a, b) - v(a)) / 2
    assert rows[a] == pytest.approx(want_a, abs=1e-9) and rows[b] == pytest.approx(want_b, abs=1e-9)
    # prune of a lesioned run also removes what the run lesioned
    pruned = invoke("prune", CNN, "--run", out, "--top", "1", "-o", tmp_path / "p.onnx")
    assert pruned.exit_code == 0, pruned.output
    assert f"removed {len(spans[top]) + len(spans[_rows(out)[0]['unit']])} units" in pruned.output


def test_interactions_command(layers_run, tmp_path) -> None:
    """`onnxshap interactions` writes interactions.csv (exact here), never overwrites it, and the report draws
    its heatmap; a custom metric recorded in run.json is not imported unless named again."""
    import shutil

    from onnxshap.audit.runfolder import RunFolder
    from onnxshap.audit.runner import config_from_run, replay_games
    from onnxshap.interactions import pair_interactions

    src, _ = layers_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    result = invoke("interactions", out, "--top", "3", "--method", "exact")
    assert result.exit_code == 0, result.output
    with open(out / "interactions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["unit_i", "unit_j", "value", "ci_low", "ci_high"] and len(rows) == 3
    folder = RunFolder(out)
    run = json.loads((out / "run.json").read_text())
    _, game, _ = replay_games(config_from_run(run), folder, provider="cpu")
    players = folder.load_players()
    names = [r["unit"] for r in _rows(out)[:3]]
    want = pair_interactions(players.wrap(game), [players.index_of(n) for n in names], method="exact")
    np.testing.assert_allclose([float(r["value"]) for r in rows], want.values, atol=1e-12)
    again = invoke("interactions", out, "--top", "3")
    assert again.exit_code == 2 and "never overwritten" in again.output
    report = invoke("report", out, "--no-pictures")
    assert report.exit_code == 0 and (out / "figures" / "interactions.png").is_file()
    assert "Pairwise interactions" in (out / "report.html").read_text()

    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef fn(o, y, g):\n    return o.mean((1, 2))\n")
    (out / "interactions.csv").unlink()
    run["metric"] = f"custom:{evil}:fn"
    (out / "run.json").write_text(json.dumps(run))
    refused = invoke("interactions", out, "--top", "3")
    assert refused.exit_code == 2 and "never runs code" in refused.output and not marker.exists()
