"""Graph surgery: find units, insert mask inputs, save instrumented models."""

from onnxshap.fileio import sha256_of
from onnxshap.graph.loading import LoadedModel, load_model, save_model
from onnxshap.graph.surgery import MASK_BATCH_DIM, instrument_model, parse_kinds
from onnxshap.graph.units import PLACEMENTS, UNIT_KINDS, SkippedLayer, UnitLayer, UnitTable, units_path_for

__all__ = [
    "MASK_BATCH_DIM",
    "PLACEMENTS",
    "UNIT_KINDS",
    "LoadedModel",
    "SkippedLayer",
    "UnitLayer",
    "UnitTable",
    "instrument_model",
    "load_model",
    "parse_kinds",
    "save_model",
    "sha256_of",
    "units_path_for",
]
