"""Rendered recognition lines (models/textlines_rec.py) and PP-OCRv4's recognizer on them with the ctc metric."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
from click.testing import CliRunner

from models.textlines import HEIGHT
from models.textlines_rec import WIDTH, make_dataset, render_lines, write_npz
from onnxshap.data import load_npz
from onnxshap.metrics.ctc import decode_text

# A stand-in for the model's dictionary (blank first, space last), so these tests need no download.
CHARSET = ["", *string.digits, *string.ascii_letters, *string.punctuation, " "]


def test_same_seed_same_lines_other_seed_other_lines():
    a, b = make_dataset(12, seed=3, charset=CHARSET), make_dataset(12, seed=3, charset=CHARSET)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.labels, b.labels)
    c = make_dataset(12, seed=4, charset=CHARSET)
    assert not np.array_equal(a.labels, c.labels)


def test_shapes_labels_and_text():
    data = make_dataset(40, seed=0, charset=CHARSET)
    assert data.x.shape == (40, 3, HEIGHT, WIDTH) and data.x.dtype == np.float32
    assert data.x.min() >= -1.0 and data.x.max() <= 1.0
    y = data.labels
    assert y is not None and y.dtype == np.int64 and y.ndim == 2 and (y[:, 0] >= 1).all()
    texts = data.names
    assert [decode_text(row, CHARSET) for row in y] == texts
    assert y.shape[1] == max(map(len, texts)) and (y == -1).any()  # padded to the longest line
    allowed = set(string.digits + string.ascii_letters + ":,.- ")
    assert all(set(t) <= allowed and 3 <= len(t) <= 16 for t in texts)
    assert any(c.isdigit() for t in texts for c in t) and any(c.isupper() for t in texts for c in t)


def test_lines_fit_the_input_without_squeezing():
    for line in render_lines(30, seed=1):
        assert line.image.width * HEIGHT <= WIDTH * line.image.height
        pixels = np.asarray(line.image)
        assert np.median(pixels) >= 150 and pixels.min() <= 120  # dark text on a light background
    data = make_dataset(30, seed=1, charset=CHARSET)
    assert (data.x[:, :, :, -1] == 0.0).mean() > 0.5  # most lines are right-padded with exact zeros


def test_npz_round_trip(tmp_path):
    path = write_npz(tmp_path / "lines.npz", n=6, seed=2, charset=CHARSET)
    loaded = load_npz(path, ["x"])
    ref = make_dataset(6, seed=2, charset=CHARSET)
    assert np.array_equal(loaded.x, ref.x) and np.array_equal(loaded.labels, ref.labels)
    with np.load(path) as npz:
        assert npz["text"].tolist() == ref.names


def _rec_model():
    from models.thirdparty import FetchError, fetch

    try:
        return fetch("ppocr_rec")
    except FetchError as exc:
        pytest.skip(f"cannot fetch ppocr_rec: {exc}")


@pytest.mark.thirdparty
@pytest.mark.slow
def test_ppocr_rec_reads_the_rendered_lines_through_the_game():
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    path = _rec_model()
    data = make_dataset(32, seed=0)  # labels in the model's own dictionary
    inst = instrument(path, provider="cpu")
    game = OnnxGame(inst, data.x, data.labels, metric="ctc")
    assert game.reduction() == "argmax-last"
    assert game.v_all >= 0.9, game.v_all
    assert game.v_empty == 0.0
    chars = OnnxGame(inst, data.x, data.labels, metric="ctc-chars")
    assert game.v_all <= chars.v_all <= 1.0 and chars.v_empty == 0.0


@pytest.mark.thirdparty
@pytest.mark.slow
def test_ppocr_rec_in_graph_argmax_equals_the_raw_outputs():
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    path = _rec_model()
    data = make_dataset(12, seed=1)
    inst = instrument(path, provider="cpu")
    coal = np.random.default_rng(0).random((4, inst.n_units)) < np.array([1.0, 0.995, 0.99, 0.97])[:, None]
    for metric in ("ctc", "ctc-chars"):
        fast = OnnxGame(inst, data.x, data.labels, metric=metric)
        plain = OnnxGame(inst, data.x, data.labels, metric=metric, fast=False)
        got = fast(coal)
        np.testing.assert_array_equal(got, plain(coal))
        if metric == "ctc-chars":
            assert len(np.unique(got)) >= 2, got  # the coalitions give different values


@pytest.mark.thirdparty
@pytest.mark.slow
def test_onnxshap_run_on_ppocr_rec_with_the_ctc_metric(tmp_path):
    from onnxshap_cli.main import cli

    path = _rec_model()
    data = write_npz(tmp_path / "lines.npz", n=32, seed=0)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(path),
            "--data",
            str(data),
            "--metric",
            "ctc",
            "--exclude",
            r"^p2o\.Conv\.([0-9]|[12][0-9]|3[0-6])$",  # only the last conv layer (120 units)
            "--images",
            "16",
            "--max-evals",
            "300",
            "--top-k",
            "5",
            "--provider",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["metric"] == "ctc" and run["v_empty"] == 0.0
    assert run["v_all"] >= 0.8 and len(run["top_k"]) == 5
    assert all(u.startswith("p2o.Conv.37:") for u in run["top_k"])
    assert (out / "shapley.csv").read_text().count("\n") == 121  # header + 120 units
    assert "shapley" in json.loads((out / "curves.json").read_text())["curves"]
