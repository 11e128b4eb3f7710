"""A vector game's elements carry their names into run.json and the report: the per-group metric's groups
as the data names them (here the MoE fixture's two domains, given as strings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from onnxshap.audit import AuditConfig, run_audit
from onnxshap.report import build_report

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_per_group_modes_are_labelled_by_the_data_group_names(tmp_path: Path) -> None:
    with np.load(MODELS / "msa_moe_domains.npz") as npz:
        x, y, group = npz["x"], npz["y"], npz["group"]
    data = tmp_path / "domains.npz"
    np.savez(data, x=x, y=y, group=np.where(group == 0, "plain", "upside-down"))
    out = tmp_path / "run"
    run_audit(
        AuditConfig(
            model=MODELS / "msa_moe.onnx", data=data, out=out, units="dense", metric="per-group",
            estimator="exact", players=f"groups:{MODELS / 'msa_moe_experts.json'}", baselines=False,
            progress=False,
        )
    )  # fmt: skip
    info = json.loads((out / "run.json").read_text())
    assert info["element_names"] == ["plain", "upside-down"]
    html = build_report(out, pictures=False).read_text()
    assert "<th class=num>plain</th>" in html and "<th class=num>upside-down</th>" in html
    assert "group 0" not in html
