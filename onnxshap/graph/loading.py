"""Load and save ONNX models safely: clear errors, external data kept external and inside its folder."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import ModelProto, TensorProto, numpy_helper
from onnx_graphsurgeon.ir.tensor import LazyValues

from onnxshap.errors import ModelError
from onnxshap.fileio import temp_file

MIN_OPSET = 7


@dataclass
class LoadedModel:
    """An ONNX model read from disk, with its external data left on disk (not loaded)."""

    proto: ModelProto
    path: Path
    external_files: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def has_external_data(self) -> bool:
        return bool(self.external_files)

    @property
    def opset(self) -> int:
        return default_opset(self.proto)


def default_opset(model: ModelProto) -> int:
    """The version of the default ("" / ai.onnx) operator set the model imports."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def iter_all_tensors(graph: onnx.GraphProto):
    """Every TensorProto of a graph: initializers, Constant attributes, and those of subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_all_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_all_tensors(sub)


def _external_location(tensor: TensorProto) -> str | None:
    if tensor.data_location != TensorProto.EXTERNAL:
        return None
    for entry in tensor.external_data:
        if entry.key == "location":
            return entry.value
    return ""


def _check_external_data(model: ModelProto, base_dir: Path) -> list[str]:
    """Validate every external-data location; return the distinct relative file names."""
    files: list[str] = []
    root = base_dir.resolve()
    for tensor in iter_all_tensors(model.graph):
        location = _external_location(tensor)
        if location is None:
            continue
        if not location:
            raise ModelError(f"tensor {tensor.name!r} has external data without a location")
        target = (root / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(root):
            raise ModelError(
                f"external data of tensor {tensor.name!r} points outside the model's folder "
                f"({location!r}); refusing to read it"
            )
        if not target.is_file():
            raise ModelError(f"external data file {location!r} of tensor {tensor.name!r} is missing")
        if location not in files:
            files.append(location)
    return files


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Read an ONNX model without loading its external data; raise ModelError with one clear line."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelError(f"not a file: {p}")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-ish or ValueError
        raise ModelError(
            f"{p} is not a readable ONNX model ({type(exc).__name__}); corrupt or truncated?"
        ) from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or len(proto.graph.node) == 0:
        raise ModelError(f"{p} is not an ONNX model (no graph or no nodes)")
    opset = default_opset(proto)
    if opset == 0:
        raise ModelError(f"{p} imports no default ONNX operator set")
    if opset < MIN_OPSET:
        raise ModelError(f"{p} uses opset {opset}; onnxshap needs opset {MIN_OPSET} or newer")
    files = _check_external_data(proto, p.parent)
    return LoadedModel(proto=proto, path=p, external_files=files)


def bind_external_data(graph: gs.Graph, base_dir: str | os.PathLike) -> None:
    """Make the graph's lazily loaded constants read their external data relative to `base_dir` (the
    model's folder), not the working directory (onnx-graphsurgeon's default)."""
    for tensor in _graph_constants(graph):
        lazy = tensor._values
        if type(lazy) is LazyValues and lazy.tensor.data_location == TensorProto.EXTERNAL:
            tensor._values = _ExternalValues(lazy, base_dir)


def _graph_constants(graph: gs.Graph):
    yield from (t for t in graph.tensors().values() if isinstance(t, gs.Constant))
    for node in graph.nodes:
        for attr in node.attrs.values():
            for value in attr if isinstance(attr, list) else [attr]:
                if isinstance(value, gs.Graph):
                    yield from _graph_constants(value)
                elif isinstance(value, gs.Constant):
                    yield value


class _ExternalValues(LazyValues):
    """LazyValues whose external data is read from the model's folder."""

    def __init__(self, lazy: LazyValues, base_dir: str | os.PathLike):
        vars(self).update(vars(lazy))
        self.base_dir = str(base_dir)

    def load(self) -> np.ndarray:
        try:
            return np.array(numpy_helper.to_array(self.tensor, base_dir=self.base_dir))
        except Exception as exc:
            raise ModelError(
                f"cannot read the external data of tensor {self.tensor.name!r}: {exc}".splitlines()[0]
            ) from None


def save_model(model: ModelProto, path: str | os.PathLike, source: LoadedModel | None = None) -> Path:
    """Save a model atomically; the external data of `source` stays external and is never modified.

    In the source's own folder the output refers to the source's data files; elsewhere each data file is
    copied next to the output under a name of its own (`OUTPUT.data`, `OUTPUT.2.data`, ...: a file of
    that name is replaced only when the output being replaced refers to it, otherwise the next free name is
    taken). Everything is written under temporary names and checked (every external tensor has a location
    inside the output's folder, within its file) before it is renamed into place, so a failed save leaves
    nothing behind.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    proto = ModelProto()
    proto.CopyFrom(model)  # locations are rewritten below; the caller's proto is left as it was
    staged: list[tuple[Path, Path]] = []  # (temporary, final) data files
    try:
        elsewhere = source is not None and source.base_dir.resolve() != out.parent.resolve()
        if source is not None and source.has_external_data and elsewhere:
            names = _data_names(out, len(source.external_files))
            renamed = dict(zip(source.external_files, names, strict=True))
            for rel, name in renamed.items():
                staged.append((_temp_copy(source.base_dir / rel, out.parent, name), out.parent / name))
            _relocate(proto, renamed)
        # The proto holds no external bytes (never loaded), so serialising it stays well under 2 GB.
        tmp_model = temp_file(out.parent, out.name, lambda fh: fh.write(proto.SerializeToString()))
        staged.append((tmp_model, out))
        _check_saved(tmp_model, out.parent, {final.name: tmp for tmp, final in staged[:-1]})
        for tmp, final in staged:
            os.replace(tmp, final)
        staged.clear()
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return out


def _data_names(out: Path, count: int) -> list[str]:
    """Names for the output's data files: free ones, or ones the output being replaced refers to."""
    owned: set[str] = set()
    if out.is_file():
        with contextlib.suppress(Exception):
            old = onnx.load(str(out), load_external_data=False)
            owned = {loc for t in iter_all_tensors(old.graph) if (loc := _external_location(t))}
    names: list[str] = []
    index = 1
    while len(names) < count:
        name = f"{out.name}.data" if index == 1 else f"{out.name}.{index}.data"
        if name in owned or not (out.parent / name).exists():
            names.append(name)
        index += 1
    return names


def _temp_copy(src: Path, folder: Path, name: str) -> Path:
    """A copy of `src` in `folder` under a temporary name (holes of a sparse file stay holes)."""
    return temp_file(folder, name, lambda fh: _copy_sparse(src, fh))


def _copy_sparse(src: Path, dst) -> None:
    size = src.stat().st_size
    with open(src, "rb") as fin:
        if not hasattr(os, "SEEK_DATA"):
            shutil.copyfileobj(fin, dst, 1 << 24)
            return
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            fin.seek(start)
            dst.seek(start)
            while start < end:
                chunk = fin.read(min(1 << 24, end - start))
                if not chunk:
                    break
                dst.write(chunk)
                start += len(chunk)
            pos = end
        dst.truncate(size)


def _relocate(model: ModelProto, renamed: dict[str, str]) -> None:
    for tensor in iter_all_tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value in renamed:
                entry.value = renamed[entry.value]


def _check_saved(path: Path, folder: Path, staged: dict[str, Path]) -> None:
    """Refuse to put in place a model that onnx or ONNX Runtime could not load (checked before renaming)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(
            f"the model written for {folder} does not read back ({type(exc).__name__})"
        ) from None
    root = folder.resolve()
    for tensor in iter_all_tensors(model.graph):
        location = _external_location(tensor)
        if location is None:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        target = (root / location).resolve() if location else root
        if not location or Path(location).is_absolute() or not target.is_relative_to(root):
            raise ModelError(
                f"refusing to write a model whose tensor {tensor.name!r} has no valid data location"
            )
        data = staged.get(location, target)
        if not data.is_file():
            raise ModelError(
                f"refusing to write a model whose tensor {tensor.name!r} has no data ({location})"
            )
        end = int(entries.get("offset", 0)) + int(entries.get("length", 0))
        if end > data.stat().st_size:
            raise ModelError(f"refusing to write a model whose tensor {tensor.name!r} lies beyond {location}")
