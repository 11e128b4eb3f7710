"""Per-permutation data batches are stratified by label x group, and the per-class and fairness games have the
values computed by hand, on every drawn batch, through a real ONNX model.

The model: x [N, 3, 1, 1] -> 1x1 Conv with identity weights (3 filters = the 3 units) -> Flatten -> 3 logits,
so with coalition S kept, logit j = x_j if j in S else 0 and the prediction is the first largest logit
(class 0 when S is empty). The 16 items, by (class, group) cell:

    cell      count  x          correct when
    (0, a)    2      (2, 1, 1)  0 in S, or S empty
    (1, a)    6      (1, 2, 1)  1 in S
    (2, a)    4      (1, 1, 2)  2 in S
    (0, b)    2      (2, 1, 1)  0 in S, or S empty
    (2, b)    2      (1, 3, 2)  2 in S and 1 not in S

Items of a cell behave alike and every cell count is even, so a stratified batch of 8 holds exactly half of
each cell and has the full data's values: acc_a(S) = (2 [0 in S or S empty] + 6 [1 in S] + 4 [2 in S]) / 12,
acc_b(S) = (2 [0 in S or S empty] + 2 [2 in S, 1 not in S]) / 4.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from onnxshap import estimate, instrument
from onnxshap.data.strata import cell_values, draw_counts, strata_of, stratified_draw
from onnxshap.errors import DataError
from onnxshap.games.onnx_game import OnnxGame
from onnxshap_cli.main import cli

CELLS = [((0, "a"), 2, (2, 1, 1)), ((1, "a"), 6, (1, 2, 1)), ((2, "a"), 4, (1, 1, 2))]
CELLS += [((0, "b"), 2, (2, 1, 1)), ((2, "b"), 2, (1, 3, 2))]
COALITIONS = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
# By hand from the table in the module docstring, in the order of COALITIONS.
ACC_A = [1 / 6, 1 / 6, 1 / 2, 1 / 3, 2 / 3, 1 / 2, 5 / 6, 1]
ACC_B = [1 / 2, 1 / 2, 0, 1 / 2, 1 / 2, 1, 0, 1 / 2]
PER_CLASS = [  # class 0: [0 in S or S empty]; class 1: [1 in S]; class 2: (4 [2 in S] + 2 [2 in S, 1 not]) / 6
    [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 2 / 3], [1, 1, 2 / 3],
]  # fmt: skip
# Exact Shapley values by hand (3 players: weights 1/3, 1/6, 1/6, 1/3 over the coalitions without i).
GAP_SHAPLEY = [-2 / 9, 31 / 36, 7 / 36]  # gap = acc_a - acc_b (a is advantaged: 1 vs 1/2 on the full model)
GROUP_B_SHAPLEY = [1 / 3, -5 / 12, 1 / 12]
PER_CLASS_MODES = [[2 / 3, 0, 0], [-1 / 3, 1, -1 / 6], [-1 / 3, 0, 5 / 6]]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    w = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Flatten", ["c"], ["logits"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 1, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w, "w")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(proto, path)
    return instrument(path, provider="cpu")


@pytest.fixture(scope="module")
def data():
    x, y, g = [], [], []
    for (label, group), count, values in CELLS:
        x += [values] * count
        y += [label] * count
        g += [group] * count
    order = np.random.default_rng(5).permutation(len(y))  # cells interleaved, as real data would be
    x = np.asarray(x, np.float32).reshape(-1, 3, 1, 1)[order]
    return x, np.asarray(y)[order], np.asarray(g)[order]


def _coalitions() -> np.ndarray:
    out = np.zeros((len(COALITIONS), 3), bool)
    for row, kept in zip(out, COALITIONS, strict=True):
        row[list(kept)] = True
    return out


def _game(model, data, metric):
    x, y, g = data
    return OnnxGame(model, x, y, g, metric=metric)


@pytest.mark.parametrize(
    ("metric", "values", "shapley"),
    [
        ("fairness", np.subtract(ACC_A, ACC_B), GAP_SHAPLEY),
        ("fairness:b", ACC_B, GROUP_B_SHAPLEY),
        ("fairness:a", ACC_A, None),
        ("per-class", PER_CLASS, PER_CLASS_MODES),
    ],
)
def test_hand_values_on_the_data_and_on_every_drawn_batch(model, data, metric, values, shapley):
    game = _game(model, data, metric)
    np.testing.assert_allclose(game(_coalitions()), values, atol=1e-12)
    if shapley is not None:
        np.testing.assert_allclose(estimate(game, "exact").values, shapley, atol=1e-12)
    for seed in range(30):
        sub = game.subgame(np.random.default_rng(seed), 8)
        assert sub.n_items == 8
        np.testing.assert_allclose(sub(_coalitions()), values, atol=1e-12, err_msg=f"seed {seed}")


@pytest.mark.parametrize("metric", ["fairness", "fairness:b", "per-class"])
def test_sampling_with_drawn_batches_equals_sampling_on_all_data(model, data, metric):
    """Same permutations (same seed): batches with the data's values give the full data's estimate."""
    game = _game(model, data, metric)
    full = estimate(game, "permutation", seed=3, n_permutations=40, progress=False)
    drawn = estimate(game, "permutation", seed=3, n_permutations=40, images=8, progress=False)
    np.testing.assert_allclose(drawn.values, full.values, atol=1e-12)


def test_every_class_and_group_in_each_batch_and_too_small_batches_refused(model, data):
    fair = _game(model, data, "fairness:b")  # 2 groups, 3 classes, 5 label x group cells
    message = "needs every group of its data in each drawn batch: 2 of them, so draw at least 2 items"
    with pytest.raises(
        DataError, match=re.escape(f"fairness:b {message} per permutation (--images 2), not 1")
    ):
        fair.subgame(np.random.default_rng(0), 1)
    with pytest.raises(DataError, match=re.escape("--images 2")):
        estimate(fair, "permutation", seed=0, n_permutations=4, images=1, progress=False)
    per_class = _game(model, data, "per-class")
    with pytest.raises(DataError, match=re.escape("per-class needs every class of its data in each drawn")):
        per_class.subgame(np.random.default_rng(0), 2)
    for metric in ("fairness:b", "per-class", "accuracy"):
        game = _game(model, data, metric)
        for seed in range(50):  # 3 items: the shares alone would often leave out class 0 or group b
            sub = game.subgame(np.random.default_rng(seed), 3)
            assert set(sub.labels.tolist()) == {0, 1, 2} and set(sub.groups.tolist()) == {"a", "b"}, seed
    for metric in ("fairness:b", "accuracy"):  # accuracy is defined on any batch: nothing is refused
        for seed in range(20):  # 2 items: both groups (too few for every class)
            sub = _game(model, data, metric).subgame(np.random.default_rng(seed), 2)
            assert set(sub.groups.tolist()) == {"a", "b"}, seed


def test_draw_counts_are_the_shares_on_average_with_every_value_covered():
    rng = np.random.default_rng(0)
    counts = np.array([1, 3, 96])
    total = np.zeros(3)
    for _ in range(4000):
        take = draw_counts(counts, 10, rng)
        assert take.sum() == 10
        total += take
    np.testing.assert_allclose(total / 4000, [0.1, 0.3, 9.6], atol=0.03)  # the exact shares, on average
    each = np.arange(3)  # a cover where every stratum is its own value (e.g. strata = classes)
    assert all(draw_counts(counts, 10, rng, [each]).tolist() == [1, 1, 8] for _ in range(20))
    labels, groups = np.array([0, 1, 1, 0, 2, 2, 2]), np.array(["x", "x", "y", "y", "x", "x", "x"])
    strata = strata_of(labels, groups)  # cells (0,x) (0,y) (1,x) (1,y) (2,x)
    assert strata.tolist() == [0, 2, 3, 1, 4, 4, 4]
    covers = [cell_values(strata, groups), cell_values(strata, labels)]
    assert covers[0].tolist() == [0, 1, 0, 1, 0] and covers[1].tolist() == [0, 0, 1, 1, 2]
    for _ in range(50):
        idx = stratified_draw(strata, 3, rng, covers)
        assert (
            len(set(idx.tolist())) == 3 and set(labels[idx]) == {0, 1, 2} and set(groups[idx]) == {"x", "y"}
        )


def test_cli_refuses_too_few_images_for_per_class(tmp_path):
    cnn = Path(__file__).resolve().parents[2] / "models" / "digits_cnn_torch.onnx"
    out = tmp_path / "run"
    args = ["run", str(cnn), "--metric", "per-class", "--images", "6", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--max-evals", "100", "--no-baselines"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "per-class needs every class of its data in each drawn batch: 10 of them" in result.stderr
    assert not (out / "run.json").exists()
