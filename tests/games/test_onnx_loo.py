"""Leave-one-out on per-layer cuts (OnnxGame.leave_one_out) equals the plain leave-one-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxshap import instrument
from onnxshap.estimators import estimate
from onnxshap.games.base import Game
from onnxshap.games.loo import loo_values, remember_loo
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.runtime.fast_path import FastPath
from onnxshap.runtime.verify import random_inputs
from tests import builders as B

MODELS = Path(__file__).resolve().parents[2] / "models"
FIXTURES = {
    "digits_cnn_torch": "digits_test.npz",
    "digits_resnet_torch": "digits_test.npz",
    "digits_cnn_keras": "digits_test_nhwc.npz",
    "digits_bias_torch": "digits_bias.npz",
}


def _data(npz: str, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    with np.load(MODELS / npz) as f:
        return f["x"][:n], f["y"][:n]


@pytest.mark.parametrize("model", sorted(FIXTURES))
@pytest.mark.parametrize("metric", ["accuracy", "mean-output", "loss"])
def test_layer_cut_loo_equals_the_plain_loo_on_the_fixtures(model, metric):
    inst = instrument(MODELS / f"{model}.onnx", provider="cpu")
    x, y = _data(FIXTURES[model])
    game = OnnxGame(inst, x, y, metric=metric)
    plain = Game.leave_one_out(game)  # one evaluation of the whole coalition per unit
    assert game._loo is None
    got = game.leave_one_out()
    np.testing.assert_array_equal(got, plain)
    assert game._loo is None  # every layer finished: its sessions were released
    # also through the estimator, and against the game that runs the whole model per call
    res = estimate(game, method="loo", progress=False)
    np.testing.assert_array_equal(res.values, plain)
    whole = OnnxGame(inst, x, y, metric=metric, fast=False)
    if metric == "mean-output":  # the fast game takes the item mean inside the graph (float32)
        np.testing.assert_allclose(whole.leave_one_out(), got, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(whole.leave_one_out(), got)


def test_layer_paths_cut_at_their_own_mask_and_live_one_at_a_time():
    inst = instrument(MODELS / "digits_resnet_torch.onnx", provider="cpu")
    x, y = _data("digits_test.npz", 40)
    game = OnnxGame(inst, x, y)
    layers = inst.units.layers
    last = layers[-1]
    players = np.arange(last.offset, last.offset + last.channels)
    first = game.leave_one_out(players[:-1])  # the layer is not finished: its path is kept
    (li,), bound = game._loo  # the layers the cut varies
    assert li == len(layers) - 1
    assert bound.path.cut.prefix_ops.count("Conv") == len(layers)  # every conv runs before the cut
    assert set(bound.path.fixed_masks) == {la.mask_input for la in layers[:-1]}
    rest = game.leave_one_out(players[-1:])
    assert game._loo is None  # released once its last unit is done
    np.testing.assert_array_equal(np.concatenate([first, rest]), Game.leave_one_out(game, players))
    # a per-layer path refuses coalitions that remove a unit before its cut
    coal = np.ones((1, inst.n_units), bool)
    coal[0, 0] = False
    with pytest.raises(ValueError, match="varies only some layers"):
        bound.evaluate(coal)


def test_unordered_players_and_units_inside_if_take_the_right_path(tmp_path):
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, y = _data("digits_test.npz", 50)
    game = OnnxGame(inst, x, y, metric="loss")
    players = np.random.default_rng(3).permutation(inst.n_units)[:37]
    np.testing.assert_array_equal(game.leave_one_out(players), Game.leave_one_out(game, players))
    # units inside an If branch: plain path
    model = B.conv_in_if()
    model.graph.output.append(onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
    iff = instrument(B.save(model, tmp_path / "if.onnx"), units="conv")
    masks = {la.mask_input for la in iff.units.layers}
    feeds = random_inputs(iff.evaluator.session, batch=3, skip=masks)
    feeds["flag"] = np.array(True)
    game = OnnxGame(iff, feeds, metric="mean-output", output="y")
    assert all(la.graph != "main" for la in iff.units.layers)
    np.testing.assert_array_equal(game.leave_one_out(), Game.leave_one_out(game))


@pytest.mark.parametrize("name", sorted(B.UNIT_MODELS))
def test_per_layer_paths_equal_the_whole_model_on_hand_built_models(tmp_path, name):
    build, units = B.UNIT_MODELS[name]
    inst = instrument(B.save(build(), tmp_path / f"{name}.onnx"), units=units)
    masks = {la.mask_input for la in inst.units.layers}
    feeds = random_inputs(inst.evaluator.session, batch=3, skip=masks)
    if "flag" in feeds:
        feeds["flag"] = np.array(True)
    for li, layer in enumerate(inst.units.layers):
        coal = np.ones((layer.channels, inst.n_units), bool)
        coal[np.arange(layer.channels), layer.offset + np.arange(layer.channels)] = False
        for output in inst.evaluator.output_names:
            want = inst.evaluate(coal, feeds, outputs=[output])[output]
            got = FastPath(inst, output, vary=[li]).bind(feeds).evaluate(coal)
            np.testing.assert_array_equal(got, want)


def test_loo_values_are_computed_once_per_game():
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    x, y = _data("digits_test.npz", 40)
    game = OnnxGame(inst, x, y)
    want = Game.leave_one_out(game)
    before = game.evaluations
    np.testing.assert_array_equal(loo_values(game, [3, 1]), want[[3, 1]])
    assert game.evaluations == before + 2
    np.testing.assert_array_equal(loo_values(game), want)
    assert game.evaluations == before + inst.n_units  # units 1 and 3 were not valued again
    np.testing.assert_array_equal(loo_values(game), want)
    assert game.evaluations == before + inst.n_units
    other = OnnxGame(inst, x, y)
    partial = np.full(inst.n_units, np.nan)
    partial[:10] = 7.0  # known values are kept, not recomputed
    remember_loo(other, partial)
    got = loo_values(other)
    assert (got[:10] == 7.0).all() and np.array_equal(got[10:], want[10:])
    with pytest.raises(ValueError, match="shape"):
        remember_loo(other, np.zeros(3))


def test_layer_cuts_of_a_model_with_external_data_from_another_folder(tmp_path, monkeypatch):
    model = onnx.load(str(MODELS / "digits_cnn_torch.onnx"))
    path = B.save(model, tmp_path / "models" / "ext.onnx", external=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    inst = instrument(path, provider="cpu")
    assert inst.source.has_external_data
    x, y = _data("digits_test.npz", 30)
    game = OnnxGame(inst, x, y, metric="loss")
    np.testing.assert_array_equal(game.leave_one_out(), Game.leave_one_out(game))


def test_layer_cuts_survive_wrong_declared_shapes(tmp_path):
    """An export whose value_info lies about a frontier tensor's shape (batch 7 for 2 items)."""
    model = B.conv_bn_relu_residual()
    model.graph.value_info.append(
        onnx.helper.make_tensor_value_info("r1", onnx.TensorProto.FLOAT, [7, 4, 6, 6])
    )
    inst = instrument(B.save(model, tmp_path / "lying.onnx"))
    feeds = random_inputs(inst.evaluator.session, batch=2, skip={la.mask_input for la in inst.units.layers})
    game = OnnxGame(inst, feeds, metric="mean-output", output="feat")
    bound = game._loo_bound((1,))
    assert "r1" in bound.path.cut.frontier
    np.testing.assert_array_equal(game.leave_one_out(), Game.leave_one_out(game))


def _conv_loop_conv() -> onnx.ModelProto:
    """conv1 -> Loop (twice: Relu(Conv(state)) + conv1's output read from the outer scope) -> conv2."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)

    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.5

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
            helper.make_node("Conv", ["s_in", "wb"], ["bc"], name="body_conv"),
            helper.make_node("Relu", ["bc"], ["br"], name="body_relu"),
            helper.make_node("Add", ["br", "c1"], ["s_out"], name="body_add"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_out", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(w(3, 3, 1, 1), "wb")],
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Loop", ["trips", "go", "c1"], ["looped"], name="loop", body=body),
        helper.make_node("Conv", ["looped", "w2"], ["c2"], name="conv2"),
        helper.make_node("ReduceMean", ["c2"], ["out"], name="pool", axes=[2, 3], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(w(3, 2, 3, 3), "w1"),
        numpy_helper.from_array(w(4, 3, 1, 1), "w2"),
        numpy_helper.from_array(np.array(2, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "go"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_loop_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_loop_in_a_suffix_and_units_inside_its_body(tmp_path):
    inst = instrument(B.save(_conv_loop_conv(), tmp_path / "loop.onnx"))
    assert [la.graph for la in inst.units.layers].count("main") == 2  # conv1, conv2 (+ the body's conv)
    assert any(la.graph != "main" for la in inst.units.layers)
    x = np.random.default_rng(0).standard_normal((6, 2, 5, 5)).astype(np.float32)
    game = OnnxGame(inst, x, metric="mean-output")
    conv1 = next(i for i, la in enumerate(inst.units.layers) if la.layer == "conv1")
    assert "Loop" not in game._loo_bound((conv1,)).path.cut.prefix_ops  # the Loop reads conv1: suffix
    np.testing.assert_array_equal(game.leave_one_out(), Game.leave_one_out(game))
