"""Square Attack on the digit fixtures: strength, constraints, honesty of the flags, determinism, layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxshap.attacks import (
    DEFAULT_EPS,
    DEFAULT_MAX_QUERIES,
    AttackResult,
    noise_attack,
    p_schedule,
    session_predict,
    square_attack,
)
from onnxshap.attacks.square import square_size

MODELS = Path(__file__).resolve().parents[2] / "models"
N_ITEMS = 100


def _session(name: str):
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODELS / name), sess_options=opts, providers=["CPUExecutionProvider"])


def _correct_items(predict, data: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(MODELS / data)
    x, y = d["x"], d["y"]
    ok = np.flatnonzero(predict(x).argmax(1) == y)[:N_ITEMS]
    return x[ok], y[ok]


@pytest.fixture(scope="module")
def torch_cnn():
    predict = session_predict(_session("digits_cnn_torch.onnx"), "input", "logits")
    x, y = _correct_items(predict, "digits_test.npz")
    return predict, x, y


@pytest.fixture(scope="module")
def default_run(torch_cnn) -> AttackResult:
    predict, x, y = torch_cnn
    return square_attack(predict, x, y)  # all defaults: eps 0.15, 1000 queries, p_init 0.05, seed 0


def _check_constraints(res: AttackResult, x: np.ndarray, eps: float) -> None:
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    assert np.abs(res.x_adv - x).max() <= eps  # in float32, as a user would check
    assert np.abs(res.x_adv.astype(np.float64) - x.astype(np.float64)).max() <= eps
    assert res.x_adv.min() >= 0.0 and res.x_adv.max() <= 1.0


def test_default_budget_breaks_most_correct_items(default_run: AttackResult, torch_cnn) -> None:
    """(1) Over 50% success at the default eps and budget on ~100 correctly classified items."""
    _, x, _ = torch_cnn
    res = default_run
    assert len(x) == N_ITEMS and res.clean_accuracy == 1.0
    assert res.params["eps"] == DEFAULT_EPS and res.params["max_queries"] == DEFAULT_MAX_QUERIES
    assert res.success_rate > 0.5, res.summary()
    assert res.success_rate == res.attack_success_rate  # every item was correct, so every item was attacked
    assert res.queries.min() >= 1 and res.queries.max() <= DEFAULT_MAX_QUERIES
    assert np.all(res.queries[~res.success] == DEFAULT_MAX_QUERIES)  # failures used the whole budget
    assert np.median(res.queries[res.success]) < DEFAULT_MAX_QUERIES / 4


def test_examples_stay_in_the_ball_and_clip_range(default_run: AttackResult, torch_cnn) -> None:
    """(2) L-inf distance to x at most eps, values inside [0, 1]."""
    _check_constraints(default_run, torch_cnn[1], DEFAULT_EPS)


def test_success_flags_match_the_models_decisions(default_run: AttackResult, torch_cnn) -> None:
    """(3) Success flags equal (argmax on x_adv != y), recomputed in one batch."""
    predict, _, y = torch_cnn
    pred = predict(default_run.x_adv).argmax(1)
    np.testing.assert_array_equal(default_run.success, pred != y)
    assert default_run.robust_accuracy == pytest.approx(float(np.mean(pred == y)))


def test_deterministic_for_a_seed(torch_cnn) -> None:
    """(4) Same seed, same examples and query counts; another seed, other examples."""
    predict, x, y = torch_cnn
    x, y = x[:40], y[:40]
    a = square_attack(predict, x, y, max_queries=200, seed=3)
    b = square_attack(predict, x, y, max_queries=200, seed=3)
    c = square_attack(predict, x, y, max_queries=200, seed=4)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    np.testing.assert_array_equal(a.queries, b.queries)
    np.testing.assert_array_equal(a.success, b.success)
    assert not np.array_equal(a.x_adv, c.x_adv)


def test_much_stronger_than_random_sign_noise(default_run: AttackResult, torch_cnn) -> None:
    """Random sign noise of the same size with the same number of queries breaks far fewer items."""
    predict, x, y = torch_cnn
    noise = noise_attack(predict, x, y)
    _check_constraints(noise, x, DEFAULT_EPS)
    pred = predict(noise.x_adv).argmax(1)
    np.testing.assert_array_equal(noise.success, pred != y)
    assert default_run.success_rate >= noise.success_rate + 0.3, (default_run.summary(), noise.summary())
    assert default_run.success_rate >= 1.5 * noise.success_rate


def test_nhwc_keras_export() -> None:
    """(6) NHWC input (tf2onnx export) with channel_axis=-1."""
    predict = session_predict(_session("digits_cnn_keras.onnx"), "input")
    x, y = _correct_items(predict, "digits_test_nhwc.npz")
    assert x.shape[1:] == (8, 8, 1)
    res = square_attack(predict, x, y, channel_axis=-1)
    assert res.success_rate > 0.5, res.summary()
    _check_constraints(res, x, DEFAULT_EPS)
    np.testing.assert_array_equal(res.success, predict(res.x_adv).argmax(1) != y)


def _linear_model(c: int, h: int, w: int, k: int = 5, seed: int = 0):
    """A fixed random linear classifier on NCHW inputs, and NCHW/NHWC predict functions for it."""
    wts = np.random.default_rng(seed).normal(size=(c * h * w, k))

    def nchw(xb: np.ndarray) -> np.ndarray:
        return xb.reshape(len(xb), -1) @ wts

    def nhwc(xb: np.ndarray) -> np.ndarray:
        return nchw(np.ascontiguousarray(xb.transpose(0, 3, 1, 2)))

    return nchw, nhwc


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 5, 9), (1, 2, 2)])
def test_layouts_give_the_same_attack(shape: tuple[int, int, int]) -> None:
    """NCHW and NHWC runs of the same model and seed give the same examples (multi-channel, non-square)."""
    c, h, w = shape
    nchw, nhwc = _linear_model(c, h, w)
    x = np.random.default_rng(1).random((30, c, h, w), dtype=np.float32)
    y = nchw(x).argmax(1)
    a = square_attack(nchw, x, y, eps=0.05, max_queries=100, channel_axis=1)
    b = square_attack(nhwc, x.transpose(0, 2, 3, 1), y, eps=0.05, max_queries=100, channel_axis=3)
    np.testing.assert_array_equal(a.x_adv, b.x_adv.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(a.queries, b.queries)
    _check_constraints(a, x, 0.05)
    assert a.success_rate > 0


def test_misclassified_items_are_free_successes(torch_cnn) -> None:
    """Items the model already gets wrong: success, 0 queries, x_adv = x; clean accuracy reported."""
    predict, x, y = torch_cnn
    x, y = x[:10], y[:10].copy()
    y[:3] = (y[:3] + 1) % 10  # wrong labels make the model "misclassify" them
    res = square_attack(predict, x, y, max_queries=20)
    assert res.clean_accuracy == pytest.approx(0.7)
    assert np.all(res.success[:3]) and np.all(res.queries[:3] == 0)
    np.testing.assert_array_equal(res.x_adv[:3], x[:3])
    assert np.all(res.queries[3:] >= 1)


def test_targeted_attack_reaches_its_targets(torch_cnn) -> None:
    """Targeted mode: success means the model outputs the target; random targets come from the seed."""
    predict, x, y = torch_cnn
    x, y = x[:30], y[:30]
    res = square_attack(predict, x, y, eps=0.3, max_queries=300, targeted=True)
    assert res.target is not None and np.all(res.target != y)
    np.testing.assert_array_equal(res.success, predict(res.x_adv).argmax(1) == res.target)
    assert res.success_rate > 0.5, res.summary()
    again = square_attack(predict, x, y, eps=0.3, max_queries=300, targeted=True)
    np.testing.assert_array_equal(res.target, again.target)
    with pytest.raises(ValueError, match="different from y"):
        square_attack(predict, x, y, targeted=True, target=y)


def test_probabilities_are_handled_like_logits(torch_cnn) -> None:
    """A softmax output is detected; the margin on log-probabilities equals the logit margin."""
    predict, x, y = torch_cnn
    x, y = x[:30], y[:30]

    def probs(xb: np.ndarray) -> np.ndarray:
        z = predict(xb).astype(np.float64)
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    a = square_attack(predict, x, y, max_queries=200)
    b = square_attack(probs, x, y, max_queries=200)
    assert a.params["scores"] == "logits" and b.params["scores"] == "probs"
    assert abs(a.success_rate - b.success_rate) <= 0.1
    np.testing.assert_array_equal(b.success, predict(b.x_adv).argmax(1) != y)


def test_schedule_and_square_size() -> None:
    """The paper's p schedule, rescaled to the budget, and square sides on tiny images."""
    assert p_schedule(0.05, 0, 10000) == 0.05
    assert p_schedule(0.05, 11, 10000) == 0.025
    assert p_schedule(0.05, 9999, 10000) == 0.05 / 512
    assert p_schedule(0.8, 2, 1000) == 0.4  # rescaled: iteration 2 of 1000 is 20 of 10000
    assert square_size(0.05, 8, 8) == 2 and square_size(0.8, 8, 8) == 7  # at most min(H, W) - 1
    assert square_size(0.0001, 8, 8) == 1 and square_size(0.5, 2, 2) == 1
    assert square_size(0.05, 224, 224) == 50


def test_bad_inputs_are_refused(torch_cnn) -> None:
    predict, x, y = torch_cnn
    with pytest.raises(ValueError, match="images"):
        square_attack(predict, x[:, 0], y)
    with pytest.raises(ValueError, match="eps"):
        square_attack(predict, x, y, eps=0)
    with pytest.raises(ValueError, match="items"):
        square_attack(predict, x, y[:-1])
    with pytest.raises(ValueError, match="clip range"):
        square_attack(predict, x + 2.0, y)
    with pytest.raises(ValueError, match="channel_axis"):
        square_attack(predict, x, y, channel_axis=0)
