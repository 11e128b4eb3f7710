"""Each metric on the digits fixture: equals an independent numpy computation; all units removed -> chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxshap import instrument
from onnxshap.errors import DataError
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.metrics import get_metric

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def digits():
    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_test.npz") as npz:
        x, y = npz["x"], npz["y"]
    logits = inst.run_original(x)["logits"].astype(np.float64)
    return inst, x, y, logits


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _game(digits, metric, **kw):
    inst, x, y, _ = digits
    return OnnxGame(inst, x, y, metric=metric, **kw)


def test_accuracy(digits):
    _, _, y, logits = digits
    game = _game(digits, "accuracy")
    assert game.v_all == pytest.approx((logits.argmax(1) == y).mean())
    # All units removed: constant logits (biases only) -> one class for every item -> its frequency (~1/10).
    assert game.v_empty == pytest.approx(0.1, abs=0.02) and game.metric.chance == 0.1


def test_loss_reads_logits(digits):
    _, _, y, logits = digits
    game = _game(digits, "loss")
    expected = np.mean(np.log(np.maximum(_softmax(logits)[np.arange(len(y)), y], 1e-4)))
    assert game.v_all == pytest.approx(expected, rel=1e-6)
    assert game.metric.assumed == "logits" and "logits" in game.metric.describe()
    # Constant logits from the dense biases are not uniform, so the value is near (not at) log(1/10).
    assert game.v_empty == pytest.approx(np.log(0.1), abs=0.6)


def test_logit_and_one_vs_rest(digits):
    _, _, y, logits = digits
    assert _game(digits, "logit").v_all == pytest.approx(logits[np.arange(len(y)), y].mean(), rel=1e-6)
    game = _game(digits, "class:3")
    pred = logits.argmax(1)
    assert game.v_all == pytest.approx(((pred == 3) == (y == 3)).mean())
    # All removed: a constant prediction; unless it is 3 the value is the share of non-3 items.
    assert game.v_empty == pytest.approx(game.metric.chance, abs=0.01) or game.v_empty == pytest.approx(
        np.mean(y == 3)
    )


def test_vector_modes(digits):
    _, _, y, logits = digits
    per_class = _game(digits, "per-class")
    assert per_class.value_shape == (10,)
    expected = [(logits.argmax(1)[y == c] == c).mean() for c in range(10)]
    np.testing.assert_allclose(per_class.v_all, expected)
    assert sorted(np.round(per_class.v_empty, 6).tolist()).count(0.0) == 9  # one constant class survives
    mean_out = _game(digits, "mean-output")
    np.testing.assert_allclose(mean_out.v_all, logits.mean(0), rtol=1e-5)


def test_probabilities_are_detected(digits, tmp_path):
    import onnx
    from onnx import helper

    model = onnx.load(str(MODELS / "digits_cnn_torch.onnx"))
    out = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Softmax", [out], ["probs"], axis=1))
    model.graph.output.append(helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, None))
    path = tmp_path / "with_softmax.onnx"
    onnx.save(model, str(path))
    inst = instrument(path)
    _, x, y, logits = digits
    game = OnnxGame(inst, x, y, metric="loss", output="probs")
    assert game.metric.assumed == "probabilities"
    expected = np.mean(np.log(np.maximum(_softmax(logits)[np.arange(len(y)), y], 1e-4)))
    assert game.v_all == pytest.approx(expected, abs=1e-5)


def test_fairness_gap_and_group(digits):
    _, _, y, logits = digits
    groups = np.where(np.arange(len(y)) % 3 == 0, "a", "b")
    game = _game(digits, "fairness", groups=groups)
    correct = logits.argmax(1) == y
    acc = {g: correct[groups == g].mean() for g in ("a", "b")}
    hi, lo = max(acc, key=acc.get), min(acc, key=acc.get)
    assert game.v_all == pytest.approx(acc[hi] - acc[lo])
    assert "accuracy(" in game.metric.describe()
    assert _game(digits, "fairness:a", groups=groups).v_all == pytest.approx(acc["a"])
    with pytest.raises(DataError, match="needs a group"):
        _game(digits, "fairness")


def test_adversarial_success_is_error_rate(digits):
    _, _, y, logits = digits
    game = _game(digits, "adversarial")
    assert game.v_all == pytest.approx((logits.argmax(1) != y).mean())


def test_custom_metric_from_file(digits, tmp_path):
    code = tmp_path / "my_metric.py"
    code.write_text(
        "import numpy as np\n"
        "def top2(outputs, labels, groups):\n"
        "    top = np.argsort(outputs, axis=-1)[..., -2:]\n"
        "    return (top == labels[None, :, None]).any(-1).mean(1)\n"
        "top2.value_range = 1.0\n"
    )
    game = _game(digits, f"custom:{code}:top2")
    _, _, y, logits = digits
    expected = (np.argsort(logits, 1)[:, -2:] == y[:, None]).any(1).mean()
    assert game.v_all == pytest.approx(expected) and game.value_range == 1.0
    with pytest.raises(DataError, match="has no function"):
        get_metric(f"custom:{code}:nope")


def test_bad_metric_and_labels(digits):
    with pytest.raises(DataError, match="unknown metric"):
        get_metric("f1")
    inst, x, y, _ = digits
    with pytest.raises(DataError, match="is not a class of this model"):
        OnnxGame(inst, x, y + 10, metric="accuracy")
    with pytest.raises(DataError, match="needs labels"):
        OnnxGame(inst, x, None, metric="accuracy")


def test_subgame_draws_items(digits):
    game = _game(digits, "accuracy")
    sub = game.subgame(np.random.default_rng(0), 100)
    assert sub.n_items == 100 and sub.metric is game.metric
    assert 0.0 <= sub(np.ones((1, game.n_players), bool))[0] <= 1.0


def test_output_map_modes_and_nan_outputs(tmp_path):
    import onnx
    from onnx import helper

    from tests import builders as B

    inst = instrument(B.save(B.conv_variants(2), tmp_path / "m.onnx"))
    x = np.random.default_rng(0).random((4, 2, 5, 5), dtype=np.float32)
    game = OnnxGame(inst, x, metric="output-map:2x2")
    assert game.value_shape == (3, 2, 2)
    full = inst.run_original(x)["out"].astype(np.float64).mean(0)
    assert game.v_all[1, 0, 0] == pytest.approx(full[1, :2, :2].mean())  # bins [0,2) of 5
    assert game.v_all[1, 1, 1] == pytest.approx(full[1, 2:, 2:].mean())
    # A model whose output is NaN for some inputs: one clear error, not NaN values in the estimators.
    model = B.conv_variants(2)
    model.graph.node.append(helper.make_node("Log", ["out"], ["logout"], name="log"))
    model.graph.node.append(helper.make_node("Sub", ["logout", "logout"], ["nan"], name="nan"))
    model.graph.output.append(helper.make_tensor_value_info("nan", onnx.TensorProto.FLOAT, None))
    bad = instrument(B.save(model, tmp_path / "bad.onnx"))
    nan_game = OnnxGame(bad, x, metric="mean-output", output="nan")  # finite with every unit kept
    with pytest.raises(DataError, match="NaN/inf values with 0 of 3 units kept"):
        _ = nan_game.v_empty
