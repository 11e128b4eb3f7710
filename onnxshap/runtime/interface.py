"""``MaskedModel``: what the runtime, the games, the attacks and the audit use of an instrumented model.

:class:`onnxshap.instrumented.Instrumented` is the one implementation; the protocol names the surface the
rest of onnxshap relies on (typed, as shapiq's ``typing.py`` names its game interface), so that a use
outside it is a type error rather than a surprise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import onnx

    from onnxshap.graph import LoadedModel, UnitTable
    from onnxshap.runtime.batching import ItemChunks
    from onnxshap.runtime.evaluator import MaskedEvaluator
    from onnxshap.runtime.session import SessionInfo

Inputs = np.ndarray | Mapping[str, np.ndarray]


@runtime_checkable
class MaskedModel(Protocol):
    """An ONNX model with one mask input per unit layer, its unit table and its ONNX Runtime sessions."""

    model: onnx.ModelProto  # the instrumented model
    units: UnitTable
    source: LoadedModel  # the original model as loaded (path, proto, external data)

    @property
    def n_units(self) -> int: ...

    @property
    def input_names(self) -> list[str]:
        """The model's own inputs (mask inputs left out)."""
        ...

    @property
    def evaluator(self) -> MaskedEvaluator:
        """The session over the instrumented model (built on first use)."""
        ...

    @property
    def provider(self) -> str:
        """The provider actually running the model ('cpu' or 'cuda')."""
        ...

    def input_metas(self) -> list:
        """The model's own inputs' descriptions (name, shape, type), masks left out."""
        ...

    def mask_inputs(self) -> set[str]:
        """The mask inputs instrumentation added."""
        ...

    def bind(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """{input name: array} for a bare array or a dict of arrays."""
        ...

    def session_for(
        self,
        model: onnx.ModelProto,
        optimize: bool | None = None,
        cuda_graph: bool = False,
        spin: bool = True,
    ) -> SessionInfo:
        """A session for a model derived from this one, on its provider, threads and options."""
        ...

    def fast_path(
        self,
        output: str,
        reduction: str | None = None,
        cut: bool = True,
        stack: int | None = None,
        pinned: bool | None = None,
    ) -> Any:
        """The coalition loop's :class:`onnxshap.runtime.fast_path.FastPath` for one output."""
        ...

    def evaluate(
        self,
        coalitions: np.ndarray,
        inputs: Inputs,
        outputs: list[str] | None = None,
        stack: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Model outputs per coalition: bool [m, n_units] -> {output: [m, *shape]}."""
        ...

    def run_original(self, inputs: Inputs, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs of the original, uninstrumented model."""
        ...

    def item_chunks(self, inputs: Inputs) -> ItemChunks | None:
        """How data items are cut into runs of a fixed batch size (None: one run)."""
        ...

    def with_means(self, means: np.ndarray) -> MaskedModel:
        """The same model instrumented for mean removal."""
        ...

    def reopen_runtime(self, provider: str, threads: int | None) -> None:
        """Drop every session and point the model at ``provider`` with ``threads`` intra-op threads; the
        next use builds them anew (how a worker re-creates the runtime of the copy it received)."""
        ...
