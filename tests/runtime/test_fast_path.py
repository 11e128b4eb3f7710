"""The coalition loop's fast path: graph cut, bound batches, in-graph reductions, stacking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxshap import instrument
from onnxshap.errors import DataError, RuntimeSetupError
from onnxshap.estimators import estimate
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.graph.cut import cut_before_masks, keep_outputs
from onnxshap.runtime.providers import CUDA_DEFAULTS, ProviderChoice, parse_provider_options, resolve_provider
from onnxshap.runtime.verify import random_inputs
from tests import builders as B

MODELS = Path(__file__).resolve().parents[2] / "models"

BUILDERS = {
    **B.UNIT_MODELS,
    "decomposed": (B.decomposed_activations, "conv"),
    "fixed_batch": (B.fixed_batch, "conv"),
}


def _digits(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    with np.load(MODELS / "digits_test.npz") as npz:
        return npz["x"][:n], npz["y"][:n]


def _feeds(inst, batch: int = 3) -> dict[str, np.ndarray]:
    masks = {lay.mask_input for lay in inst.units.layers}
    feeds = random_inputs(inst.evaluator.session, batch=batch, skip=masks)
    if "flag" in feeds:
        feeds["flag"] = np.array(True)
    return feeds


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fast_path_equals_the_whole_model(tmp_path, name):
    build, units = BUILDERS[name]
    inst = instrument(B.save(build(), tmp_path / f"{name}.onnx"), units=units, optimize=False)
    feeds = _feeds(inst, batch=1 if name == "fixed_batch" else 3)
    coal = np.random.default_rng(0).random((9, inst.n_units)) < 0.6
    coal[0] = True
    coal[1] = False
    for output in inst.evaluator.output_names:
        want = inst.evaluate(coal, feeds, outputs=[output])[output]
        for cut in (True, False):
            bound = inst.fast_path(output, cut=cut).bind(feeds)
            got = bound.evaluate(coal)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(bound.evaluate(coal[:1]), want[:1])  # buffers reused, not stale


def test_cut_moves_the_layers_before_the_first_mask_out_of_the_loop(tmp_path):
    full = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    masks = {lay.mask_input for lay in full.units.layers}
    cut = cut_before_masks(full.model, masks)
    assert cut is not None and cut.prefix_ops == ["Conv", "Relu"]
    assert cut.prefix_inputs == full.input_names and not cut.passthrough
    suffix_inputs = {i.name for i in cut.suffix.graph.input}
    assert set(cut.frontier) | masks == suffix_inputs
    assert "Conv" not in [n.op_type for n in cut.prefix.graph.node][2:]
    assert [o.name for o in cut.prefix.graph.output] == cut.frontier
    # Only the last layer analysed: everything before it runs once per data batch.
    last = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu", exclude="conv1|conv2")
    late = cut_before_masks(last.model, {lay.mask_input for lay in last.units.layers})
    assert late is not None and late.prefix_ops.count("Conv") == 3  # conv3 runs before its own mask
    x, _ = _digits(16)
    coal = np.random.default_rng(1).random((5, last.n_units)) < 0.5
    out = last.evaluator.output_names[0]
    got = last.fast_path(out).bind(last.bind(x)).evaluate(coal)
    np.testing.assert_allclose(got, last.evaluate(coal, x)[out], rtol=1e-5, atol=1e-5)


def test_keep_outputs_drops_nodes_other_outputs_need(tmp_path):
    model = B.conv_variants(2)
    model.graph.node.append(helper.make_node("Relu", ["out"], ["extra"], name="extra_relu"))
    model.graph.output.append(helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None))
    kept = keep_outputs(model, ["out"])
    assert [o.name for o in kept.graph.output] == ["out"]
    assert "extra_relu" not in [n.name for n in kept.graph.node]
    assert {i.name for i in kept.graph.input} == {i.name for i in model.graph.input}


def test_argmax_reduction_gives_the_classes_and_still_catches_nan(tmp_path):
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, _ = _digits()
    out = inst.evaluator.output_names[0]
    coal = np.random.default_rng(2).random((12, inst.n_units)) < 0.5
    classes = inst.fast_path(out, "argmax").bind(inst.bind(x)).evaluate(coal)
    assert classes.dtype == np.int64 and classes.shape == (12, len(x))
    np.testing.assert_array_equal(classes, inst.evaluate(coal, x)[out].argmax(-1))
    model = B.conv_variants(2)
    model.graph.node.append(helper.make_node("Log", ["out"], ["logout"], name="log"))
    model.graph.node.append(helper.make_node("Sub", ["logout", "logout"], ["nan"], name="nan"))
    model.graph.node.append(helper.make_node("ReduceMean", ["nan"], ["scores"], axes=[2, 3], keepdims=0))
    model.graph.output.append(helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, None))
    bad = instrument(B.save(model, tmp_path / "bad.onnx"))
    x2 = np.random.default_rng(0).random((4, 2, 5, 5), dtype=np.float32)
    game = OnnxGame(bad, x2, labels=np.zeros(4, np.int64), metric="accuracy", output="scores")
    assert game.reduction() == "argmax"
    with pytest.raises(DataError, match="NaN/inf values with 0 of 3 units kept"):
        _ = game.v_empty


@pytest.mark.parametrize("metric", ["accuracy", "per-class", "fairness", "class:3", "mean-output", "loss"])
def test_fast_games_value_like_plain_games(metric):
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, y = _digits(60)
    groups = np.where(np.arange(60) % 3 == 0, "a", "b")
    fast = OnnxGame(inst, x, y, groups, metric=metric)
    plain = OnnxGame(inst, x, y, groups, metric=metric, fast=False)
    want = {"accuracy": "argmax", "per-class": "argmax", "fairness": "argmax", "class:3": "argmax"}
    assert fast.reduction() == want.get(metric, "mean-items" if metric == "mean-output" else None)
    coal = np.random.default_rng(3).random((20, inst.n_units)) < 0.4
    if metric == "mean-output":
        np.testing.assert_allclose(fast(coal), plain(coal), rtol=1e-5, atol=1e-6)  # float32 mean in graph
    else:
        np.testing.assert_array_equal(fast(coal), plain(coal))
    sub_fast = fast.subgame(np.random.default_rng(5), 16)
    sub_plain = plain.subgame(np.random.default_rng(5), 16)
    np.testing.assert_allclose(sub_fast(coal[:4]), sub_plain(coal[:4]), rtol=1e-5, atol=1e-6)


def test_estimates_do_not_depend_on_the_fast_path_or_stacking():
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, y = _digits(40)
    results = []
    for kw in ({"fast": False}, {}, {"stack": 4}):
        game = OnnxGame(inst, x, y, metric="accuracy", **kw)
        res = estimate(game, method="truncated", n_permutations=4, images=24, seed=7, progress=False)
        results.append(res.values)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_auto_stack_is_bit_identical_and_recorded():
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, _ = _digits(32)
    out = inst.evaluator.output_names[0]
    path = inst.fast_path(out, "argmax")
    coal = np.random.default_rng(4).random((40, inst.n_units)) < 0.5
    bound = path.bind(inst.bind(x))
    got = bound.evaluate(coal)
    assert path.describe().stack in (1, 2, 4, 8, 16)
    for k in (1, 4):
        fixed = inst.fast_path(out, "argmax", stack=k).bind(inst.bind(x)).evaluate(coal)
        np.testing.assert_array_equal(fixed, got)


def test_stacking_refused_with_the_reason(tmp_path):
    inst = instrument(B.save(B.fixed_batch(), tmp_path / "fixed.onnx"))
    feeds = _feeds(inst, batch=1)
    coal = np.ones((3, inst.n_units), bool)
    assert inst.fast_path("y").bind(feeds).evaluate(coal).shape[0] == 3  # auto: single runs
    with pytest.raises(DataError, match="fixed batch size of 1"):
        inst.fast_path("y", stack=2).bind(feeds).evaluate(coal)


def test_cuda_provider_options_are_checked_and_passed():
    assert parse_provider_options(["use_tf32=0", "cudnn_conv_algo_search=HEURISTIC"]) == {
        "use_tf32": "0",
        "cudnn_conv_algo_search": "HEURISTIC",
    }
    with pytest.raises(RuntimeSetupError, match="unknown CUDA provider option 'cudnn_magic'"):
        parse_provider_options(["cudnn_magic=1"])
    with pytest.raises(RuntimeSetupError, match="not KEY=VALUE"):
        parse_provider_options(["use_tf32"])
    # On CPU the options are validated but not passed anywhere.
    assert resolve_provider("cpu", {"use_tf32": "0"}).ort_providers() == ["CPUExecutionProvider"]
    choice = ProviderChoice(
        "cuda",
        ("CUDAExecutionProvider", "CPUExecutionProvider"),
        tuple(sorted({**CUDA_DEFAULTS, "enable_cuda_graph": "1"}.items())),
    )
    cuda, cpu = choice.ort_providers()
    assert cuda[0] == "CUDAExecutionProvider" and cuda[1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert cpu == "CPUExecutionProvider" and choice.cuda_graph


def test_pinned_buffers_swap_batches_in_and_out():
    """CUDA graphs replay on fixed addresses: batches share one buffer set and copy their data in."""
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, _ = _digits(40)
    out = inst.evaluator.output_names[0]
    pinned = inst.fast_path(out, "argmax", stack=2, pinned=True)
    own = inst.fast_path(out, "argmax", stack=2)
    coal = np.random.default_rng(6).random((5, inst.n_units)) < 0.5
    batches = [inst.bind(x[:20]), inst.bind(x[20:]), inst.bind(x[5:25])]
    a, b, c = (pinned.bind(f) for f in batches)
    for bound, feeds in [(a, batches[0]), (b, batches[1]), (a, batches[0]), (c, batches[2]), (b, batches[1])]:
        np.testing.assert_array_equal(bound.evaluate(coal), own.bind(feeds).evaluate(coal))
    assert set(pinned.pinned_slots) == {(20, 1), (20, 2)}  # 5 coalitions in stacks of 2: sizes 2 and 1
    assert pinned.run_options(1) is None  # no CUDA graph on CPU


@pytest.mark.gpu
@pytest.mark.parametrize("options", [None, {"enable_cuda_graph": "1"}])
def test_cuda_fast_path_agrees_with_the_cpu(options):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA is not installed")
    x, _ = _digits(32)
    coal = np.random.default_rng(8).random((10, 80)) < 0.5
    cpu = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    gpu = instrument(MODELS / "digits_cnn_torch.onnx", provider="cuda", provider_options=options)
    out = cpu.evaluator.output_names[0]
    want = cpu.fast_path(out, "argmax").bind(cpu.bind(x)).evaluate(coal)
    path = gpu.fast_path(out, "argmax")
    assert path.device == "cuda" and path.cuda_graph == bool(options)
    for feeds in (gpu.bind(x), gpu.bind(x[::-1].copy()), gpu.bind(x)):  # pinned batches swap in and out
        got = path.bind(feeds).evaluate(coal)
        expect = want if feeds["input"][0].tobytes() == x[0].tobytes() else None
        if expect is not None:
            np.testing.assert_array_equal(got, expect)


def test_wrong_inferred_frontier_shapes_are_freed(tmp_path):
    """An export whose value_info lies about a shape: the suffix is re-declared with free dimensions."""
    model = B.conv_bn_relu_residual()
    inst = instrument(B.save(model, tmp_path / "m.onnx"), optimize=False)
    feeds = _feeds(inst, batch=2)
    out = inst.evaluator.output_names[0]
    path = inst.fast_path(out, stack=1)
    assert path.cut is not None
    name = path.cut.frontier[0]
    lying = onnx.ModelProto()
    lying.CopyFrom(path._suffix)
    for info in lying.graph.input:
        if info.name == name:
            info.type.tensor_type.shape.dim[0].dim_value = 7  # the batch is 2
    path._suffix = lying
    path._open_suffix()  # ORT accepts the declared shape; the prefix's real output contradicts it
    coal = np.random.default_rng(9).random((4, inst.n_units)) < 0.5
    np.testing.assert_array_equal(
        path.bind(feeds).evaluate(coal), inst.evaluate(coal, feeds, outputs=[out])[out]
    )
