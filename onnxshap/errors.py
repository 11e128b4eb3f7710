"""User-facing errors: one clear line, turned into exit code 2 by the CLI."""

from __future__ import annotations


class OnnxShapError(Exception):
    """A problem with the user's input (model, data, options) explained in one line."""


class ModelError(OnnxShapError):
    """The model file is missing, corrupt, unsafe or unsupported."""


class DataError(OnnxShapError):
    """Input data does not fit the model (shape, dtype, names) or is missing."""


class RuntimeSetupError(OnnxShapError):
    """The ONNX Runtime installation or the requested provider is not usable."""
