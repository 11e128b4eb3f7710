"""User data for games: .npz arrays or image folders, preprocessing specs, splits and model-fit checks."""

from __future__ import annotations

from onnxshap.data.checks import check_against_model
from onnxshap.data.dataset import Dataset
from onnxshap.data.images import load_image_folder, read_labels_csv
from onnxshap.data.load import load_data
from onnxshap.data.npz import load_npz
from onnxshap.data.preprocess import PreprocessSpec, parse_size, spec_for_input

__all__ = [
    "Dataset",
    "PreprocessSpec",
    "check_against_model",
    "load_data",
    "load_image_folder",
    "load_npz",
    "parse_size",
    "read_labels_csv",
    "spec_for_input",
]
