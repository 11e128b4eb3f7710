"""The typed model interface: Instrumented satisfies MaskedModel; reopen_runtime re-creates the sessions."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

from onnxshap import instrument
from onnxshap.runtime.interface import MaskedModel
from onnxshap.runtime.session import input_metas

REPO = Path(__file__).resolve().parents[2]
CNN = REPO / "models" / "digits_cnn_torch.onnx"


def test_instrumented_is_a_masked_model() -> None:
    inst = instrument(CNN, provider="cpu")
    assert isinstance(inst, MaskedModel)
    assert not isinstance(object(), MaskedModel)
    metas = inst.input_metas()
    assert [m.name for m in metas] == inst.input_names and len(metas) == 1
    every = [m.name for m in input_metas(inst.evaluator.session)]
    assert set(every) == set(inst.input_names) | inst.mask_inputs() and len(inst.mask_inputs()) >= 2


def test_reopen_runtime_builds_new_sessions_with_equal_outputs() -> None:
    inst = instrument(CNN, provider="cpu")
    with np.load(REPO / "models" / "digits_test.npz") as npz:
        x = npz["x"][:8]
    coal = np.random.default_rng(0).random((3, inst.n_units)) < 0.5
    before = inst.evaluate(coal, x)
    first = inst.evaluator
    inst.reopen_runtime("cpu", 1)
    assert inst.threads == 1 and inst.evaluator is not first
    after = inst.evaluate(coal, x)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    copy = pickle.loads(pickle.dumps(inst))
    assert copy._evaluator is None and copy._fast_paths == {}


def test_one_place_asks_a_session_for_its_inputs() -> None:
    hits = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("onnxshap", "cli", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"get_inputs\(\)", line)
    ]
    assert hits == ["onnxshap/runtime/session.py:" + hits[0].rsplit(":", 1)[1]] and len(hits) == 1
