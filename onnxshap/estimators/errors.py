"""Errors raised by the estimators: one clear line each (the CLI turns OnnxShapError into exit code 2)."""

from __future__ import annotations

from onnxshap.errors import OnnxShapError


class ParameterError(OnnxShapError, ValueError):
    """An estimator parameter is unknown, out of range or inconsistent with the game."""


class CheckpointError(OnnxShapError, ValueError):
    """A checkpoint cannot be used: it belongs to another run, is corrupt, or would be overwritten."""
