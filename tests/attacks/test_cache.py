"""The adversarial-example cache: reuse on a matching key, regeneration otherwise, atomic files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxshap.attacks import (
    AttackResult,
    cache_path,
    data_fingerprint,
    file_sha256,
    load_or_generate,
    square_attack,
)

MODELS = Path(__file__).resolve().parents[2] / "models"
MODEL = MODELS / "digits_cnn_torch.onnx"


@pytest.fixture(scope="module")
def setup():
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(MODEL), sess_options=opts, providers=["CPUExecutionProvider"])

    def predict(xb: np.ndarray) -> np.ndarray:
        return sess.run(["logits"], {"input": xb})[0]

    d = np.load(MODELS / "digits_test.npz")
    return predict, d["x"][:20], d["y"][:20]


def _key(x: np.ndarray, y: np.ndarray, eps: float) -> dict:
    return {
        "model_sha256": file_sha256(MODEL),
        "data": data_fingerprint(x, y),
        "eps": eps,
        "max_queries": 50,
        "seed": 0,
        "p_init": 0.05,
        "targeted": False,
    }


class Counter:
    """A generate() callable that counts its calls."""

    def __init__(self, predict, x: np.ndarray, y: np.ndarray, eps: float) -> None:
        self.args = (predict, x, y, eps)
        self.calls = 0

    def __call__(self) -> AttackResult:
        self.calls += 1
        predict, x, y, eps = self.args
        return square_attack(predict, x, y, eps=eps, max_queries=50, seed=0)


def test_reuses_on_same_key_and_regenerates_when_eps_changes(tmp_path: Path, setup) -> None:
    """(5) Second call with the same key does not generate; a new eps does (and gets its own file)."""
    predict, x, y = setup
    gen = Counter(predict, x, y, 0.15)
    first = load_or_generate(tmp_path, _key(x, y, 0.15), gen)
    second = load_or_generate(tmp_path, _key(x, y, 0.15), gen)
    assert gen.calls == 1
    for name in ("x_adv", "success", "queries", "clean_correct", "y"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype
    assert second.target is None and second.params == first.params
    assert second.success_rate == first.success_rate

    path = cache_path(tmp_path, _key(x, y, 0.15))
    assert path.name.startswith("adv-") and len(path.stem) == 4 + 64
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["key"]["eps"] == 0.15 and meta["params"]["attack"] == "square-linf"

    gen2 = Counter(predict, x, y, 0.2)
    third = load_or_generate(tmp_path, _key(x, y, 0.2), gen2)
    assert gen2.calls == 1 and third.params["eps"] == 0.2
    assert cache_path(tmp_path, _key(x, y, 0.2)) != path
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".npz") == sorted(
        [path.name, cache_path(tmp_path, _key(x, y, 0.2)).name]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no leftovers


def test_every_key_part_matters(setup) -> None:
    _, x, y = setup
    base = _key(x, y, 0.15)
    paths = {cache_path("c", base)}
    for name, value in [
        ("model_sha256", "0" * 64),
        ("data", data_fingerprint(x[:-1], y[:-1])),
        ("max_queries", 51),
        ("seed", 1),
        ("p_init", 0.3),
        ("targeted", True),
    ]:
        paths.add(cache_path("c", {**base, name: value}))
    assert len(paths) == 7
    assert cache_path("c", dict(reversed(list(base.items())))) == cache_path("c", base)  # order-free
    with pytest.raises(ValueError, match="missing eps"):
        cache_path("c", {k: v for k, v in base.items() if k != "eps"})


def test_corrupt_file_is_regenerated(tmp_path: Path, setup) -> None:
    predict, x, y = setup
    key = _key(x, y, 0.15)
    path = cache_path(tmp_path, key)
    path.write_bytes(b"not an npz")
    gen = Counter(predict, x, y, 0.15)
    res = load_or_generate(tmp_path, key, gen)
    assert gen.calls == 1 and res.n == len(x)
    load_or_generate(tmp_path, key, gen)
    assert gen.calls == 1


def test_result_that_contradicts_its_key_is_refused(tmp_path: Path, setup) -> None:
    predict, x, y = setup
    with pytest.raises(ValueError, match="eps"):
        load_or_generate(tmp_path, _key(x, y, 0.3), Counter(predict, x, y, 0.15))
    assert not list(tmp_path.iterdir())
