"""Load and save ONNX models safely: clear errors, external data kept external and inside its folder."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import ModelProto, TensorProto

from onnxshap.errors import ModelError

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


def save_model(model: ModelProto, path: str | os.PathLike, source: LoadedModel | None = None) -> Path:
    """Save a model; external data of `source` stays external (linked or copied next to the output)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if source is not None and source.has_external_data:
        src_root = source.base_dir.resolve()
        dst_root = out.parent.resolve()
        if src_root != dst_root:
            for rel in source.external_files:
                dst = dst_root / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.exists():
                    dst.unlink()
                try:
                    os.link(src_root / rel, dst)
                except OSError:
                    shutil.copyfile(src_root / rel, dst)
    tmp = out.with_name(out.name + ".tmp")
    # The proto holds no external bytes (never loaded), so serialising it stays well under 2 GB.
    with open(tmp, "wb") as fh:
        fh.write(model.SerializeToString())
    os.replace(tmp, out)
    return out
