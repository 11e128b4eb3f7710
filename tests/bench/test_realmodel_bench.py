"""bench/realmodel.py runs on the second real model (PP-OCRv4 rec, ctc metric) and prints every figure."""

from __future__ import annotations

import pytest

from bench import realmodel


@pytest.mark.thirdparty
@pytest.mark.slow
def test_realmodel_bench_on_ppocr_rec_prints_curves_of_three_rankings(capsys):
    from models.thirdparty import FetchError, fetch

    try:
        fetch("ppocr_rec")
    except FetchError as exc:
        pytest.skip(f"cannot fetch ppocr_rec: {exc}")
    last_layer_only = r"^p2o\.Conv\.([0-9]|[12][0-9]|3[0-6])$"
    args = ["--model", "ppocr_rec", "--images", "8", "--max-evals", "40", "--exclude", last_layer_only]
    assert realmodel.main([*args, "--top-k", "5", "--no-progress", "--param", "rotations=2"]) == 0
    out = capsys.readouterr().out
    assert 'bound default, {"rotations": 2}' in out
    assert "ppocr_rec (ppocr_rec.onnx): 120 units (120 conv filters, 1 layers, 37 skipped" in out
    assert "in-graph reduction argmax-last" in out and "stopped     max_evals" in out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-5:-1]}
    assert table["k"] == ["0", *map(str, range(1, 11)), "20", "30"]
    assert {"shapley", "loo", "random"} <= set(table) and all(len(table[r]) == 13 for r in table)
    assert "shapley - loo: k=1" in out.splitlines()[-1]


def test_realmodel_bench_rejects_a_malformed_param(capsys):
    with pytest.raises(SystemExit) as exc:
        realmodel.main(["--param", "rotations"])
    assert exc.value.code == 2
    assert "expected KEY=JSON (e.g. rotations=40), got 'rotations'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        realmodel.main(["--param", "seed=3"])
    assert exc.value.code == 2
    assert "--param seed: set by the benchmark itself (use its own option)" in capsys.readouterr().err
