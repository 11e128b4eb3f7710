"""`instrument()`: an ONNX model with a mask per unit layer, its unit table, and a way to evaluate coalitions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from onnxshap.errors import DataError, ModelError
from onnxshap.graph import LoadedModel, UnitTable, instrument_model, load_model, save_model, sha256_of
from onnxshap.graph.units import units_path_for
from onnxshap.runtime.batching import ItemChunks, plan_chunks
from onnxshap.runtime.evaluator import MaskedEvaluator, prepare_inputs, run_items
from onnxshap.runtime.fast_path import FastPath
from onnxshap.runtime.providers import without_cuda_graph
from onnxshap.runtime.session import SessionInfo, input_metas, make_session


class Instrumented:
    """An instrumented model: `.model` (ONNX), `.units` (unit table), `.evaluate(coalitions, inputs)`."""

    def __init__(
        self,
        model: onnx.ModelProto,
        units: UnitTable,
        source: LoadedModel,
        provider: str = "auto",
        threads: int | None = None,
        optimize: bool = True,
        provider_options: dict[str, str] | None = None,
    ):
        self.model = model
        self.units = units
        self.source = source
        self.provider_request = provider
        self.threads = threads
        self.optimize = optimize
        self.provider_options = dict(provider_options or {})
        self._evaluator: MaskedEvaluator | None = None
        self._fast_paths: dict[tuple, FastPath] = {}
        self._original: SessionInfo | None = None

    def __getstate__(self) -> dict:
        """Pickle the model, unit table and options, not the ONNX Runtime sessions: the copy builds its
        own session on first use (how games travel to distributed workers). Models with external data
        need that data at the same path where the copy is unpickled."""
        state = dict(self.__dict__)
        state.update(_evaluator=None, _original=None, _fast_paths={})
        return state

    def reopen_runtime(self, provider: str, threads: int | None) -> None:
        """Drop every ONNX Runtime session (instrumented, original, fast paths) and run on ``provider``
        with ``threads`` intra-op threads from now on; the next use builds the sessions anew (how a
        distributed worker points the copy it received at its own device)."""
        self.provider_request = provider
        self.threads = threads
        self._evaluator = None
        self._original = None
        self._fast_paths = {}

    @property
    def n_units(self) -> int:
        return self.units.n_units

    def unit_ids(self) -> list[str]:
        return self.units.unit_ids()

    @property
    def input_names(self) -> list[str]:
        """The model's own inputs (mask inputs left out)."""
        return [m.name for m in self.input_metas()]

    def mask_inputs(self) -> set[str]:
        """The mask inputs instrumentation added (one per unit layer)."""
        return {layer.mask_input for layer in self.units.layers}

    def input_metas(self) -> list:
        """The model's own inputs' descriptions (onnxruntime ``NodeArg``: name, shape, type), masks left out."""
        return input_metas(self.evaluator.session, skip=self.mask_inputs())

    def bind(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{input name: array}: a bare array, or a one-array dict under another name, goes to the only input."""
        names = self.input_names
        if isinstance(inputs, Mapping):
            if len(inputs) == 1 and len(names) == 1 and names[0] not in inputs:
                return {names[0]: np.asarray(next(iter(inputs.values())))}
            return {k: np.asarray(v) for k, v in inputs.items()}
        if len(names) != 1:
            raise DataError(f"the model has {len(names)} inputs ({', '.join(names)}); pass a dict of arrays")
        return {names[0]: np.asarray(inputs)}

    def session_for(
        self,
        model: onnx.ModelProto,
        optimize: bool | None = None,
        cuda_graph: bool = False,
        spin: bool = True,
    ) -> SessionInfo:
        """A session for a model derived from this one, on its provider, threads and options (external
        data resolved next to the source); CUDA graphs only where asked (bound, fixed buffers)."""
        ext = self.source.base_dir if self.source.has_external_data else None
        options = self.provider_options if cuda_graph else without_cuda_graph(self.provider_options)
        return make_session(
            model,
            self.provider_request,
            self.threads,
            self.optimize if optimize is None else optimize,
            external_data_dir=ext,
            provider_options=options,
            spin=spin,
        )

    @property
    def evaluator(self) -> MaskedEvaluator:
        if self._evaluator is None:
            self._evaluator = MaskedEvaluator(self.session_for(self.model), self.units)
        return self._evaluator

    def fast_path(
        self,
        output: str,
        reduction: str | None = None,
        cut: bool = True,
        stack: int | None = None,
        pinned: bool | None = None,
    ) -> FastPath:
        """The coalition loop's fast path for one output (made once per argument set; see FastPath)."""
        key = (output, reduction, cut, stack, pinned)
        if key not in self._fast_paths:
            self._fast_paths[key] = FastPath(
                self, output, reduction=reduction, cut=cut, stack=stack, pinned=pinned
            )
        return self._fast_paths[key]

    @property
    def provider(self) -> str:
        """The provider that actually runs the instrumented model ('cpu' or 'cuda')."""
        return self.evaluator.info.provider

    def evaluate(
        self,
        coalitions: np.ndarray,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        outputs: list[str] | None = None,
        stack: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Model outputs per coalition: bool [m, n_units] -> {output: [m, *shape]}."""
        return self.evaluator.evaluate(coalitions, inputs, outputs=outputs, stack=stack)

    def run_original(
        self, inputs: np.ndarray | Mapping[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs of the original, uninstrumented model (same provider and options)."""
        if self._original is None:
            self._original = self.session_for(self.source.proto)
        session = self._original.session
        feeds = prepare_inputs(session, inputs, set(), fixed_batch=True)
        names = outputs or [o.name for o in session.get_outputs()]
        return dict(zip(names, run_items(session, names, feeds), strict=True))

    def item_chunks(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> ItemChunks | None:
        """How these data items are cut into runs of the model's fixed batch size; None when the model
        takes them in one run (see `onnxshap.runtime.batching`)."""
        session = self.evaluator.session
        masks = self.mask_inputs()
        return plan_chunks(input_metas(session), prepare_inputs(session, inputs, masks, fixed_batch=True))

    def with_means(self, means: np.ndarray) -> Instrumented:
        """The same model instrumented for mean removal: a removed unit outputs ``means[unit]`` (one value
        per unit, e.g. from `onnxshap.runtime.activations.channel_means`) instead of zero."""
        values = np.asarray(means, dtype=np.float64).reshape(-1)
        if values.shape != (self.n_units,):
            raise ModelError(f"means must hold one value per unit ({self.n_units}), got {values.shape}")
        per_layer = {la.layer: values[la.offset : la.offset + la.channels] for la in self.units.layers}
        units = self.units
        proto, table = instrument_model(self.source, units.kinds, units.placement, units.exclude, per_layer)
        table.model_sha256 = units.model_sha256
        return Instrumented(
            proto,
            table,
            self.source,
            provider=self.provider_request,
            threads=self.threads,
            optimize=self.optimize,
            provider_options=self.provider_options,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the instrumented model and, next to it, its unit table (`NAME.units.json`)."""
        out = save_model(self.model, path, source=self.source)
        self.units.save(units_path_for(out))
        return out


def instrument(
    model: str | os.PathLike,
    units: str = "conv",
    placement: str = "after-chain",
    provider: str = "auto",
    threads: int | None = None,
    optimize: bool = True,
    exclude: str | None = None,
    provider_options: dict[str, str] | None = None,
) -> Instrumented:
    """Instrument an ONNX model file: one mask input per unit layer (see `onnxshap.graph`).

    units: "conv" or "conv,dense"; placement: "after-chain" or "after-conv"; provider: auto|cpu|cuda;
    exclude: regular expression of layer names to leave out (e.g. a fixed STFT filter bank);
    provider_options: CUDA EP options overriding onnxshap's defaults (see `onnxshap.runtime.providers`).
    """
    loaded = load_model(model)
    proto, table = instrument_model(loaded, units=units, placement=placement, exclude=exclude)
    table.model_sha256 = sha256_of(loaded.path)
    return Instrumented(
        proto,
        table,
        loaded,
        provider=provider,
        threads=threads,
        optimize=optimize,
        provider_options=provider_options,
    )


def load_instrumented(
    path: str | os.PathLike,
    provider: str = "auto",
    threads: int | None = None,
    optimize: bool = True,
    provider_options: dict[str, str] | None = None,
) -> Instrumented:
    """Re-open a model written by `Instrumented.save` (its `.units.json` must sit next to it)."""
    loaded = load_model(path)
    table_path = units_path_for(loaded.path)
    if not table_path.is_file():
        raise ModelError(f"unit table {table_path.name} not found next to {loaded.path.name}")
    table = UnitTable.load(table_path)
    return Instrumented(
        loaded.proto,
        table,
        loaded,
        provider=provider,
        threads=threads,
        optimize=optimize,
        provider_options=provider_options,
    )
