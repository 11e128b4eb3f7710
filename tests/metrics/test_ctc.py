"""CTC sequence metrics (ctc, ctc-chars): greedy decoding, edit distance, label checks, the in-graph argmax."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxshap import instrument
from onnxshap.data import Dataset, load_npz
from onnxshap.errors import DataError, ModelError
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.graph.reduction import append_reduction
from onnxshap.metrics import Accuracy, get_metric
from onnxshap.metrics.ctc import (
    SequenceCharSimilarity,
    SequenceExactMatch,
    decode_text,
    edit_distances,
    edit_similarities,
    encode,
    exact_matches,
    greedy_decode,
    paddle_charset,
)

CLASSES, STEPS, HIDDEN = 6, 8, 8  # class 0 is the blank


def sequence_model(opset: int = 17, declared_shape: bool = True) -> onnx.ModelProto:
    """x [N, 1, 4, 8] -> Conv (8 filters, 4x1) -> Relu -> Conv (CLASSES filters, 1x1) -> [N, 8, C] -> Softmax:
    a tiny CTC recognizer (14 units)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((HIDDEN, 1, 4, 1))).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal((CLASSES, HIDDEN, 1, 1)) * 2).astype(np.float32), "w2"),
        numpy_helper.from_array(np.linspace(0.5, -0.5, CLASSES).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="features"),
        helper.make_node("Relu", ["c1"], ["a1"], name="relu"),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="head"),
    ]
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.array([2], np.int64), "axes"))
        nodes.append(helper.make_node("Squeeze", ["c2", "axes"], ["sq"], name="sq"))
    else:
        nodes.append(helper.make_node("Squeeze", ["c2"], ["sq"], axes=[2], name="sq"))
    nodes += [
        helper.make_node("Transpose", ["sq"], ["steps"], perm=[0, 2, 1], name="tr"),
        helper.make_node("Softmax", ["steps"], ["probs"], axis=2, name="softmax"),
    ]
    shape = ["N", STEPS, CLASSES] if declared_shape else None
    graph = helper.make_graph(
        nodes,
        "ctc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, STEPS])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def _data(n: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 4, STEPS)).astype(np.float32)


def _labels_from(inst, x: np.ndarray) -> np.ndarray:
    """The full model's own greedy readings as labels (so v(all) = 1), with a few lines made wrong."""
    probs = inst.evaluate(np.ones((1, inst.n_units), bool), x)["probs"][0]
    decoded, lengths = greedy_decode(probs.argmax(-1))
    labels = decoded[:, : max(int(lengths.max()), 1)].copy()
    labels[lengths == 0, 0] = 1  # an empty reading cannot be a label here: give it one character
    return labels


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    paths = np.array([[0, 3, 3, 0, 3, 5, 5, 0], [0, 0, 0, 0, 0, 0, 0, 0], [2, 2, 2, 2, 1, 1, 1, 1]])
    decoded, lengths = greedy_decode(paths)
    assert lengths.tolist() == [3, 0, 2]
    assert decoded[0, :4].tolist() == [3, 3, 5, -1] and (decoded[1] == -1).all()
    assert decoded[2, :3].tolist() == [2, 1, -1]
    labels = np.array([[3, 3, 5, -1], [1, -1, -1, -1], [2, 1, -1, -1]])
    assert exact_matches(paths[None], labels).tolist() == [[True, False, True]]
    # 'x y' vs 'x y': 1; empty vs one char: 0.
    np.testing.assert_allclose(edit_similarities(paths[None], labels), [[1.0, 0.0, 1.0]])
    # Another blank index: class 0 is then an ordinary character.
    decoded, lengths = greedy_decode(np.array([[0, 5, 0, 0]]), blank=5)
    assert decoded[0, : lengths[0]].tolist() == [0, 0]


def _levenshtein(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]


def test_edit_distances_equal_the_textbook_dynamic_programme():
    rng = np.random.default_rng(0)
    pairs = 400
    len_a, len_b = rng.integers(0, 9, pairs), rng.integers(0, 7, pairs)
    a, b = np.full((pairs, 8), -1), np.full((pairs, 6), -1)
    for i in range(pairs):
        a[i, : len_a[i]] = rng.integers(1, 4, len_a[i])
        b[i, : len_b[i]] = rng.integers(1, 4, len_b[i])
    want = [_levenshtein(list(a[i, : len_a[i]]), list(b[i, : len_b[i]])) for i in range(pairs)]
    np.testing.assert_array_equal(edit_distances(a, len_a, b, len_b), want)
    # Normalised by the longer sequence, as PaddleOCR's norm_edit_dis: 'abc' read as 'abd' -> 1 - 1/3.
    paths = np.array([[[1, 0, 2, 0, 4]]])
    np.testing.assert_allclose(edit_similarities(paths, np.array([[1, 2, 3]])), [[2 / 3]])


def test_encode_and_decode_with_a_paddle_dictionary(tmp_path):
    model = sequence_model()
    helper.set_model_props(model, {"character": "a\nb\nc\nd"})
    path = tmp_path / "rec.onnx"
    onnx.save(model, path)
    charset = paddle_charset(path)
    assert charset == ["", "a", "b", "c", "d", " "]  # blank first, rapidocr's trailing space last
    labels = encode(["ab a", "dd", "c"], charset)
    assert labels.tolist() == [[1, 2, 5, 1], [4, 4, -1, -1], [3, -1, -1, -1]]
    assert decode_text(labels[0], charset) == "ab a"
    with pytest.raises(DataError, match="characters the dictionary lacks: 'xz'"):
        encode(["zax"], charset)
    onnx.save(sequence_model(), tmp_path / "plain.onnx")
    with pytest.raises(DataError, match="no 'character' entry"):
        paddle_charset(tmp_path / "plain.onnx")


def test_registry_names():
    assert isinstance(get_metric("ctc"), SequenceExactMatch)
    assert isinstance(get_metric("ctc-chars"), SequenceCharSimilarity)
    assert get_metric("ctc").reduction == "argmax-last" and get_metric("ctc").value_range == 1.0


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([[1.0, 2.0]] * 3), "CTC labels must be integer sequences"),
        (np.array([[1, 2, 6]] * 3), "class 6 at position 2: not a character class of this model"),
        (np.array([[1, 0, 2]] * 3), "class 0 at position 1"),  # the blank is never a target
        (np.array([[1, -2, -1]] * 3), "class -2 at position 1"),
        (np.array([[1, -1, 2]] * 3), "has -1 before a character"),
        (np.array([[1, 1, 1, 1, 2]] * 3), "needs 8 time steps but the model emits 4"),
    ],
)
def test_labels_are_checked_at_prepare(labels, message):
    reference = np.full((3, 4, CLASSES), 1.0 / CLASSES, dtype=np.float32)
    for metric in (SequenceExactMatch(), SequenceCharSimilarity()):
        with pytest.raises(DataError, match=message):
            metric.prepare(reference, labels, None)


def test_outputs_must_be_sequences_and_classification_refuses_sequences():
    with pytest.raises(DataError, match=r"needs sequence outputs \[N, steps, classes\]"):
        SequenceExactMatch().prepare(np.zeros((3, 10), np.float32), np.ones((3, 2), np.int64), None)
    with pytest.raises(DataError, match="needs labels"):
        SequenceExactMatch().prepare(np.zeros((3, 4, 6), np.float32), None, None)
    with pytest.raises(DataError, match="label sequences are for the ctc metrics"):
        Accuracy().check_data(np.ones((3, 2), np.int64), None, (10,))
    # One character per line may come as a 1-D array.
    metric = SequenceExactMatch()
    metric.prepare(np.zeros((3, 4, 6), np.float32), np.array([1, 2, 3]), None)
    assert metric(
        np.array([[[1, 1, 0, 0], [2, 0, 0, 0], [4, 0, 0, 0]]]), np.array([1, 2, 3]), None
    ).tolist() == [2 / 3]


def test_argmax_last_reduction_in_the_graph(tmp_path):
    model = sequence_model()
    reduced, names = append_reduction(model, "probs", "argmax-last")
    assert [n.op_type for n in reduced.graph.node][-3:] == ["ArgMax", "Sub", "ReduceSum"]
    assert names == ["probs__onnxshap_argmax-last", "probs__onnxshap_finite_check"]
    # Below opset 11 ArgMax takes no negative axis: the declared rank gives the last axis, or a clear error.
    old, _ = append_reduction(sequence_model(opset=10), "probs", "argmax-last")
    assert helper.get_attribute_value(old.graph.node[-3].attribute[0]) == 2
    undeclared, _ = append_reduction(sequence_model(opset=10, declared_shape=False), "probs", "argmax-last")
    assert helper.get_attribute_value(undeclared.graph.node[-3].attribute[0]) == 2  # from shape inference
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "free",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("shape", TensorProto.INT64, None),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    free = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    with pytest.raises(ModelError, match="its rank is unknown"):
        append_reduction(free, "y", "argmax-last")


@pytest.mark.parametrize("opset", [17, 10])
@pytest.mark.parametrize("metric", ["ctc", "ctc-chars"])
def test_in_graph_argmax_equals_the_metric_on_raw_outputs(tmp_path, opset, metric):
    path = tmp_path / "rec.onnx"
    onnx.save(sequence_model(opset), path)
    inst = instrument(path, provider="cpu")
    assert inst.n_units == HIDDEN + CLASSES
    x = _data()
    y = _labels_from(inst, x)
    fast = OnnxGame(inst, x, y, metric=metric)
    plain = OnnxGame(inst, x, y, metric=metric, fast=False)
    assert fast.reduction() == "argmax-last" and fast.fast_path().out_names[0].endswith("argmax-last")
    coal = np.random.default_rng(1).random((40, inst.n_units)) < 0.7
    coal[0] = True
    got, want = fast(coal), plain(coal)
    np.testing.assert_array_equal(got, want)
    assert got[0] == 1.0 and len(np.unique(got)) > 3  # the game is not constant
    bound = inst.fast_path("probs", "argmax-last").bind(inst.bind(x))
    classes = bound.evaluate(coal[:5])
    assert classes.dtype == np.int64 and classes.shape == (5, len(x), STEPS)
    np.testing.assert_array_equal(classes, inst.evaluate(coal[:5], x)["probs"].argmax(-1))


def test_sequence_labels_load_from_npz_and_split(tmp_path):
    x = _data(10)
    y = np.tile(np.array([[1, 2, -1]]), (10, 1))
    np.savez(tmp_path / "lines.npz", x=x, y=y, text=np.array(["ab"] * 10))
    data = load_npz(tmp_path / "lines.npz", ["x"])
    assert data.labels is not None and data.labels.shape == (10, 3) and data.labels.dtype == np.int64
    valuation, held_out = data.split(0.3, seed=0)
    assert len(held_out) == 3 and held_out.labels.shape == (3, 3) and valuation.labels.shape == (7, 3)
    with pytest.raises(DataError, match="labels has 4 items but the inputs have 10"):
        Dataset({"x": x}, labels=y[:4])
    with pytest.raises(DataError, match=r"one-hot\? save y.argmax\(1\)"):  # one-hot rows are not sequences
        Dataset({"x": x}, labels=np.eye(10, dtype=np.int64))


def test_cli_bad_labels_exit_2_in_one_line(tmp_path):
    path = tmp_path / "rec.onnx"
    onnx.save(sequence_model(), path)
    x = _data(8)
    np.savez(tmp_path / "bad.npz", x=x, y=np.tile(np.array([[1, 9]]), (8, 1)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxshap_cli.main",
            "run",
            str(path),
            "--data",
            str(tmp_path / "bad.npz"),
            "--metric",
            "ctc",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("onnxshap: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "class 9 at position 1: not a character class of this model" in proc.stderr


def test_cli_run_and_report_of_a_ctc_audit(tmp_path):
    from click.testing import CliRunner

    from onnxshap_cli.main import cli

    path = tmp_path / "rec.onnx"
    onnx.save(sequence_model(), path)
    x = _data(40)
    np.savez(tmp_path / "lines.npz", x=x, y=_labels_from(instrument(path, provider="cpu"), x))
    out = tmp_path / "run"
    args = ["run", str(path), "--data", str(tmp_path / "lines.npz"), "--metric", "ctc-chars", "--top-k", "3"]
    result = CliRunner().invoke(cli, [*args, "--max-evals", "400", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["v_all"] == 1.0 and run["metric"] == "ctc-chars" and run["held_out_items"] == 20
    report = CliRunner().invoke(cli, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "report.html").is_file()
