"""Models with external data saved elsewhere: the source is never touched, the output always loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import tests.builders as B
from onnxshap import instrument
from onnxshap.errors import ModelError
from onnxshap.graph import load_model, save_model
from onnxshap.graph.weights import weight_norms
from onnxshap_cli.main import cli

MODELS = Path(__file__).resolve().parents[2] / "models"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def external_cnn(tmp_path) -> Path:
    """The digits CNN with every weight in `cnn.data`, and its test data, in tmp_path/src."""
    src = tmp_path / "src"
    src.mkdir()
    model = onnx.load(str(MODELS / "digits_cnn_torch.onnx"))
    onnx.save(model, str(src / "cnn.onnx"), save_as_external_data=True, location="cnn.data", size_threshold=0)
    (src / "digits_test.npz").write_bytes((MODELS / "digits_test.npz").read_bytes())
    return src / "cnn.onnx"


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_instrument_and_prune_into_another_folder_leave_the_source_alone(external_cnn, tmp_path):
    src = external_cnn.parent
    before = _digest(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cnn.data").write_bytes(b"someone else's file")  # same name as the source's data file
    runner = CliRunner()
    done = runner.invoke(cli, ["instrument", str(external_cnn), "-o", str(out / "masked.onnx")])
    assert done.exit_code == 0, done.output
    run = tmp_path / "run"
    args = ["run", str(external_cnn), "--data", str(src / "digits_test.npz"), "--out", str(run)]
    args += ["--max-evals", "300", "--top-k", "3"]
    done = runner.invoke(cli, [*args, "--no-baselines", "--no-progress", "--estimator", "permutation"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        cli, ["prune", str(external_cnn), "--run", str(run), "--top", "3", "-o", str(out / "pruned.onnx")]
    )
    assert done.exit_code == 0, done.output

    assert _digest(src) == before  # not modified, not linked
    assert all(p.stat().st_nlink == 1 for p in src.iterdir())
    onnx.load(str(external_cnn))  # onnx refuses hard-linked data files ("potential hardlink attack")
    assert (out / "cnn.data").read_bytes() == b"someone else's file"
    x = np.load(MODELS / "digits_test.npz")["x"][:16]
    reference = _ort(MODELS / "digits_cnn_torch.onnx", x)
    assert np.array_equal(_ort(external_cnn, x), reference)
    pruned = _ort(out / "pruned.onnx", x)
    assert pruned.shape == reference.shape and not np.array_equal(pruned, reference)
    onnx.load(str(out / "pruned.onnx"))
    masked = onnx.load(str(out / "masked.onnx"))
    assert len(masked.graph.input) > 1
    assert sorted(p.name for p in out.iterdir()) == [
        "cnn.data",
        "masked.onnx",
        "masked.onnx.data",
        "masked.units.json",
        "pruned.onnx",
        "pruned.onnx.data",
    ]


def test_saving_again_replaces_its_own_data_and_spares_unrelated_files(tmp_path):
    src = B.save(B.conv_bn_relu_residual(), tmp_path / "src" / "model.onnx", external=True)
    inst = instrument(src, optimize=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.onnx.data").write_bytes(b"not ours")  # no other.onnx refers to it
    inst.save(out / "other.onnx")
    assert (out / "other.onnx.data").read_bytes() == b"not ours"
    assert load_model(out / "other.onnx").external_files == ["other.onnx.2.data"]
    inst.save(out / "other.onnx")  # replacing the output replaces the data file it refers to
    assert load_model(out / "other.onnx").external_files == ["other.onnx.2.data"]
    assert sorted(p.name for p in out.iterdir()) == [
        "other.onnx",
        "other.onnx.2.data",
        "other.onnx.data",
        "other.units.json",
    ]


def test_a_model_that_would_not_load_is_never_written(tmp_path):
    src = B.save(B.conv_bn_relu_residual(), tmp_path / "src" / "model.onnx", external=True)
    loaded = load_model(src)
    broken = onnx.ModelProto()
    broken.CopyFrom(loaded.proto)
    tensor = broken.graph.initializer[0]
    del tensor.external_data[:]  # external, but no location: what ORT reports as "Missing 'location'"
    out = tmp_path / "out"
    with pytest.raises(ModelError, match="no valid data location"):
        save_model(broken, out / "broken.onnx", source=loaded)
    assert list(out.iterdir()) == []  # no model, no data copy, no temporary file


def test_weights_are_read_from_the_model_folder_whatever_the_working_directory(
    external_cnn, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # cnn.data is not here
    inst = instrument(external_cnn)
    norms = weight_norms(inst.source, inst.units)
    monkeypatch.chdir(MODELS)
    plain = instrument(MODELS / "digits_cnn_torch.onnx")
    assert np.isfinite(norms).all()
    np.testing.assert_array_equal(norms, weight_norms(plain.source, plain.units))
