"""Evaluating coalitions through ONNX Runtime: invariants, stacking, input checks, providers."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap import instrument
from onnxshap.errors import DataError, RuntimeSetupError
from onnxshap.runtime.providers import physical_cores, resolve_provider
from onnxshap.runtime.session import make_session
from onnxshap.runtime.verify import check_invariant, random_inputs
from tests import builders as B

BUILDERS = B.UNIT_MODELS


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("placement", ["after-chain", "after-conv"])
def test_invariant_on_hand_built_models(tmp_path, name, placement):
    build, units = BUILDERS[name]
    inst = instrument(
        B.save(build(), tmp_path / f"{name}.onnx"), units=units, placement=placement, optimize=False
    )
    feeds = random_inputs(inst.evaluator.session, batch=2, skip={lay.mask_input for lay in inst.units.layers})
    if "flag" in feeds:
        feeds["flag"] = np.array(True)
    report = check_invariant(inst, feeds)
    assert report.max_abs_diff == 0.0  # optimisations off in both sessions: x*1 is bit-exact
    assert report.changed_when_removed


def test_removed_unit_is_exact_zero_after_chain(tmp_path):
    """With after-chain placement a removed filter contributes exactly 0 downstream, even through BN and Sigmoid."""
    inst = instrument(B.save(B.conv_variants(2), tmp_path / "m.onnx"), optimize=False)
    x = np.random.default_rng(0).random((3, 2, 5, 5), dtype=np.float32)
    c = np.ones((1, 3), bool)
    c[0, 1] = False
    out = inst.evaluate(c, x)["out"][0]
    assert np.all(out[:, 1] == 0) and np.all(out[:, 0] > 0)
    raw = instrument(B.save(B.conv_variants(2), tmp_path / "m2.onnx"), placement="after-conv", optimize=False)
    out_raw = raw.evaluate(c, x)["out"][0]
    assert np.allclose(out_raw[:, 1], 0.5)  # Sigmoid(0): zeroing the raw conv is not removal


def test_single_channel_changes_only_itself(tmp_path):
    inst = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx"), optimize=False)
    x = np.random.default_rng(0).random((2, 2, 6, 6), dtype=np.float32)
    n = inst.n_units
    coalitions = np.ones((n, n), bool)
    np.fill_diagonal(coalitions, False)
    out = inst.evaluate(coalitions, x)["logits"]
    full = inst.run_original(x)["logits"]
    changed = [not np.array_equal(out[i], full) for i in range(n)]
    assert sum(changed) >= n - 1  # every unit matters in this tiny dense-weighted model


def test_stacked_equals_serial(tmp_path):
    inst = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx"), optimize=False)
    x = np.random.default_rng(0).random((3, 2, 6, 6), dtype=np.float32)
    c = np.random.default_rng(1).random((7, inst.n_units)) > 0.4
    serial = inst.evaluate(c, x, stack=1)
    stacked = inst.evaluate(c, x, stack=4)
    for name in serial:
        assert serial[name].shape == (7, 3, *serial[name].shape[2:])
        np.testing.assert_allclose(stacked[name], serial[name], rtol=1e-6, atol=1e-6)
    assert inst.evaluator.default_stack() == 1  # CPU: stacking off by default (slower there)


def test_input_errors(tmp_path):
    inst = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx"))
    with pytest.raises(DataError, match=r"expects shape \[N, 2, 6, 6\], got \[2, 6, 6\]"):
        inst.evaluate(np.ones((1, inst.n_units), bool), np.zeros((2, 6, 6), np.float32))
    with pytest.raises(DataError, match="coalitions must be"):
        inst.evaluate(np.ones((1, 3), bool), np.zeros((1, 2, 6, 6), np.float32))
    with pytest.raises(DataError, match="missing model input"):
        inst.evaluate(np.ones((1, inst.n_units), bool), {"y": np.zeros((1, 2, 6, 6), np.float32)})
    with pytest.raises(DataError, match="unknown output"):
        inst.evaluate(np.ones((1, inst.n_units), bool), np.zeros((1, 2, 6, 6), np.float32), outputs=["zz"])
    # float64 data is accepted and cast to the model's float32
    out = inst.evaluate(np.ones((1, inst.n_units), bool), np.zeros((1, 2, 6, 6)))
    assert out["logits"].dtype == np.float32


def test_provider_choice():
    assert resolve_provider("cpu").providers == ("CPUExecutionProvider",)
    with pytest.raises(RuntimeSetupError, match="unknown provider"):
        resolve_provider("tpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeSetupError, match="no CUDA support"):
            resolve_provider("cuda")
        assert resolve_provider("auto").providers == ("CPUExecutionProvider",)


def test_session_reports_cpu_and_threads(tmp_path):
    path = B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx")
    info = make_session(path, "auto")
    assert info.provider in ("cpu", "cuda")
    assert info.threads == physical_cores() >= 1


@pytest.mark.gpu
def test_cuda_really_runs(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA is not installed")
    inst = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx"), provider="cuda")
    assert inst.provider == "cuda"
    assert inst.evaluator.default_stack() > 1


def test_stacking_refused_when_batch_items_interact(tmp_path):
    dyn = instrument(B.save(B.conv_integer(), tmp_path / "q.onnx"))
    assert "DynamicQuantizeLinear" in dyn.evaluator.stack_blocker
    with pytest.raises(DataError, match="couples the items of a batch"):
        dyn.evaluate(np.ones((2, dyn.n_units), bool), np.zeros((1, 2, 5, 5), np.float32), stack=2)
    fixed = instrument(B.save(B.fixed_batch(), tmp_path / "f.onnx"))
    assert fixed.evaluator.stack_blocker == "input 'x' has a fixed batch size of 1"
    free = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "r.onnx"))
    assert free.evaluator.can_stack


def test_decomposed_activations_invariant(tmp_path):
    inst = instrument(B.save(B.decomposed_activations(), tmp_path / "d.onnx"), optimize=False)
    report = check_invariant(inst, np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32))
    assert report.max_abs_diff == 0 and report.changed_when_removed
