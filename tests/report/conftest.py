"""Small real run folders (digits CNN), made once per test session for the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.helpers import MODELS


def _run(out: Path, **options) -> Path:
    from onnxshap.audit import AuditConfig, run_audit

    cfg = AuditConfig(
        model=MODELS / "digits_cnn_torch.onnx", out=out, top_k=10, images=64, progress=False, **options
    )
    return run_audit(cfg).path


@pytest.fixture(scope="session")
def scalar_run(tmp_path_factory) -> Path:
    """A finished accuracy run (tmab, small budget)."""
    pytest.importorskip("matplotlib")
    return _run(tmp_path_factory.mktemp("runs") / "accuracy", estimator="tmab", max_evals=800)


@pytest.fixture(scope="session")
def vector_run(tmp_path_factory) -> Path:
    """A finished per-class accuracy run: a vector game with modes.npy [80, 10]."""
    pytest.importorskip("matplotlib")
    return _run(
        tmp_path_factory.mktemp("runs") / "perclass", metric="per-class", estimator="truncated", max_evals=600
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The README's main job as it ships: the digits CNN on its own data, every default."""
    from onnxshap.audit import AuditConfig, run_audit

    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("runs") / "demo"
    return run_audit(AuditConfig(model=MODELS / "digits_cnn_torch.onnx", out=out, progress=False)).path


@pytest.fixture(scope="session")
def budget_run(tmp_path_factory) -> Path:
    """A run stopped on its budget long before it could settle: wide intervals, most units undecided."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("runs") / "budget"
    return _run(out, estimator="tmab", max_evals=600, baselines=False)
