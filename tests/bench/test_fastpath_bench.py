"""The fast-path and GPU benchmarks run here: the CPU one on the fixtures, the GPU one says why it cannot."""

from __future__ import annotations

import pytest

from bench import fastpath, gpu


def test_fastpath_bench_measures_every_variant(capsys):
    sc = fastpath.Scenario(
        "digits_cnn (last layer)",
        fastpath.ROOT / "models" / "digits_cnn_torch.onnx",
        fastpath.scenarios(False)[1].x[:32],
        keep_last=1,
        coalitions=8,
    )
    res = fastpath.run_scenario(sc, "cpu", repeats=1)
    assert all(res[v] > 0 for v in fastpath.VARIANTS)
    assert res["prefix_ops"] >= 5 and res["stack"] in (1, 2, 4, 8, 16)


def test_gpu_bench_reports_a_missing_gpu_and_exits_0(capsys):
    why = gpu.cuda_missing()
    if why is None:
        pytest.skip("CUDA is available: bench/gpu.py measures instead")
    assert gpu.main(["--no-thirdparty"]) == 0
    assert "no CUDA here" in capsys.readouterr().out
