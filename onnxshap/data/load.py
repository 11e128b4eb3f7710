"""One entry point for user data: an .npz file or an image folder, checked against the model's inputs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from onnxshap.data.checks import as_meta, check_against_model
from onnxshap.data.dataset import Dataset
from onnxshap.data.images import LABELS_FILE, load_image_folder
from onnxshap.data.npz import load_npz
from onnxshap.data.preprocess import PreprocessSpec, spec_for_input
from onnxshap.errors import DataError


def load_data(
    path: str | Path,
    input_metas: Iterable[Any] | None = None,
    spec: PreprocessSpec | str | Path | None = None,
    *,
    input_name: str | None = None,
    **spec_overrides: Any,
) -> Dataset:
    """Load an .npz or an image folder; with `input_metas` (``onnxshap.runtime.session.input_metas`` or (name, shape, type)) check it.

    For a folder, the preprocessing is `spec` (a PreprocessSpec or a JSON file) or guessed from the model input
    (`spec_for_input`), with `spec_overrides` (size, resize, scale, mean, std, channels, layout, dtype, ...;
    None = unset) on top. `input_name` picks the model input the images feed (default: the only one).
    """
    path = Path(path)
    metas = [as_meta(m) for m in input_metas] if input_metas is not None else None
    overrides = {k: v for k, v in spec_overrides.items() if v is not None}
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            hint = " (give the folder that holds it)" if path.name == LABELS_FILE else ""
            raise DataError(
                f"unsupported data file {path.name}: give an .npz or a folder of images with {LABELS_FILE}{hint}"
            )
        if spec is not None or overrides:
            given = ", ".join(["spec"] * (spec is not None) + sorted(overrides))
            raise DataError(
                f"preprocessing options ({given}) apply to image folders; {path.name} holds arrays already "
                "preprocessed"
            )
        dataset = load_npz(path, [m[0] for m in metas] if metas is not None else None)
    elif path.is_dir():
        meta = _image_input(metas, input_name)
        if isinstance(spec, str | Path):
            spec = PreprocessSpec.load(spec)
        if spec is not None:
            spec = spec.replace(**overrides)
        elif meta is not None:
            spec = spec_for_input(meta[1], meta[2], name=meta[0], **overrides)
        elif "size" in overrides:
            spec = PreprocessSpec(**overrides)
        else:
            raise DataError(
                f"{path} is an image folder: give a preprocessing spec, the image size, or the model to read it from"
            )
        name = meta[0] if meta is not None else (input_name or "x")
        dataset = load_image_folder(path, spec, input_name=name)
    else:
        raise DataError(f"{path} is neither a file nor a folder")
    if metas is not None:
        check_against_model(dataset, metas)
    return dataset


def _image_input(
    metas: list[tuple[str, Any, str]] | None, input_name: str | None
) -> tuple[str, Any, str] | None:
    if metas is None:
        return None
    if input_name is not None:
        for meta in metas:
            if meta[0] == input_name:
                return meta
        names = ", ".join(m[0] for m in metas)
        raise DataError(f"the model has no input {input_name!r} (inputs: {names})")
    if len(metas) != 1:
        names = ", ".join(m[0] for m in metas)
        raise DataError(
            f"the model has {len(metas)} inputs ({names}); an image folder feeds one: use an .npz with one array "
            "per input"
        )
    return metas[0]
