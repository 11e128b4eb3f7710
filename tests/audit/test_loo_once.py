"""An audit computes leave-one-out once: a loo run's own values are its removal curves' LOO baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxshap.audit.runner import AuditConfig, run_audit
from onnxshap.games.onnx_game import OnnxGame

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture
def loo_calls(monkeypatch):
    """The players OnnxGame.leave_one_out is asked for, call by call (the real method still runs)."""
    calls: list[int] = []
    real = OnnxGame.leave_one_out

    def counting(self, players=None):
        calls.append(self.n_players if players is None else len(players))
        return real(self, players)

    monkeypatch.setattr(OnnxGame, "leave_one_out", counting)
    return calls


@pytest.mark.parametrize("estimator", ["loo", "truncated"])
def test_an_audit_values_each_unit_once_by_leave_one_out(tmp_path, loo_calls, estimator):
    extra = {"n_permutations": 2} if estimator == "truncated" else {}
    cfg = AuditConfig(
        model=MODELS / "digits_cnn_torch.onnx",
        out=tmp_path / "run",
        estimator=estimator,
        top_k=5,
        images=32,
        progress=False,
        extra=extra,
    )
    folder = run_audit(cfg)
    assert sum(loo_calls) == 80  # the digits CNN's 80 filters, once (the loo run's values are reused)
    curves = json.loads((folder.path / "curves.json").read_text())
    assert "loo" in curves["curves"]
    if estimator == "loo":
        with np.load(folder.path / "result.npz") as res:
            ranking = np.argsort(-res["values"], kind="stable")
        assert curves["rankings"]["loo"] == ranking[: len(curves["rankings"]["loo"])].tolist()
