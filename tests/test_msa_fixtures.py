"""The MSA paper's three settings on the committed fixtures (no torch needed to run them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxshap.audit import AuditConfig, run_audit
from onnxshap.report import build_report, load_run

MODELS = Path(__file__).resolve().parents[1] / "models"


def _run(tmp_path: Path, name: str, **kw):
    out = tmp_path / name
    run_audit(AuditConfig(out=out, progress=False, baselines=False, **kw))
    build_report(out, pictures=False)
    return load_run(out)


def test_mlp_per_class_modes_and_hub_share(tmp_path) -> None:
    from onnxshap.report.figures import hub_share

    for name in ("msa_mlp_nowd", "msa_mlp_wd"):
        data = _run(
            tmp_path, name, model=MODELS / f"{name}.onnx", data=MODELS / "msa_digits_flat.npz", units="dense",
            exclude="fc3", metric="per-class", estimator="permutation", extra={"n_permutations": 3},
        )  # fmt: skip
        assert data.modes.shape == (96, 10) and np.mean(data.info["v_all"]) > 0.9
        k, share = hub_share(data)
        assert k == 5 and 0 < share < 1
        assert "the top 5% of players (5) hold" in (data.path / "report.html").read_text()


def test_generator_per_pixel_modes_are_drawn(tmp_path) -> None:
    data = _run(
        tmp_path, "gen", model=MODELS / "msa_generator.onnx", data=MODELS / "msa_codes.npz", exclude="/out/",
        metric="mean-output", estimator="permutation", split=0.0, extra={"n_permutations": 2},
    )  # fmt: skip
    assert [la.op for la in data.units.layers] == ["ConvTranspose", "ConvTranspose"]
    assert data.modes.shape == (24, 1, 8, 8)
    assert (data.path / "figures" / "mode_images.png").is_file()
    assert "which players paint which pixels" in (data.path / "report.html").read_text()


def test_moe_experts_by_domain_exact(tmp_path) -> None:
    groups = MODELS / "msa_moe_experts.json"
    assert sorted(json.loads(groups.read_text())) == ["expert0", "expert1", "expert2", "expert3"]
    data = _run(
        tmp_path, "moe", model=MODELS / "msa_moe.onnx", data=MODELS / "msa_moe_domains.npz", units="dense",
        metric="per-group", estimator="exact", players=f"groups:{groups}",
    )  # fmt: skip
    assert data.players.names == ["expert0", "expert1", "expert2", "expert3"]
    assert data.modes.shape == (4, 2)
    v_all, v_empty = np.asarray(data.info["v_all"]), np.asarray(data.info["v_empty"])
    np.testing.assert_allclose(data.modes.sum(axis=0), v_all - v_empty, atol=1e-9)  # exact: efficiency
    assert "group 1" in (data.path / "report.html").read_text()


@pytest.mark.torch
@pytest.mark.slow
def test_builder_makes_an_mlp_pair(tmp_path) -> None:
    pytest.importorskip("torch")
    import onnxruntime as ort

    from models.build_msa_fixtures import build_mlp

    info = build_mlp(tmp_path, epochs=2)
    assert set(info) == {"msa_mlp_nowd", "msa_mlp_wd"}
    x = np.load(tmp_path / "msa_digits_flat.npz")["x"][:4]
    for name in info:
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert session.run(["logits"], {"input": x})[0].shape == (4, 10)
