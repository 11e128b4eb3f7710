"""The coalition loop's fast path: everything that does not change between coalitions is done once.

For one model output (and optionally a reduction of it):

* the graph is cut at the earliest masked layer (:mod:`onnxshap.graph.cut`) and trimmed to that output;
  the prefix runs once per data batch, coalitions run on the suffix only;
* the data batch (the prefix's outputs) lives on the device as OrtValues bound once through IOBinding;
  between runs only the mask values change, written in place into mask buffers bound once, and the
  output goes to a buffer bound once (fixed addresses: what CUDA graphs need);
* the output can be reduced inside the graph (:mod:`onnxshap.graph.reduction`), so a run returns e.g.
  the predicted classes instead of the logits;
* coalitions are stacked along the batch when that is faster and gives bit-identical outputs, sized
  automatically by timing the first coalitions (:meth:`BoundBatch.evaluate`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxshap.errors import DataError, ModelError
from onnxshap.graph.cut import GraphCut, cut_before_masks, free_input_dims, keep_outputs
from onnxshap.graph.reduction import REDUCE_SHAPE_INPUT, append_reduction
from onnxshap.runtime.batching import ItemChunks, plan_chunks
from onnxshap.runtime.evaluator import (
    MaskedEvaluator,
    non_finite_output,
    ort_failure,
    prepare_inputs,
    run_session,
)
from onnxshap.runtime.providers import import_ort
from onnxshap.runtime.session import input_metas

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel

log = logging.getLogger(__name__)

STACK_CANDIDATES = (1, 2, 4, 8, 16)
TUNE_MAX_RUN_SECONDS = 0.02  # runs slower than this already fill the device: stacking cannot pay
STACK_MAX_BYTES = 256 << 20  # cap on a stacked copy of the bound batch
STACK_GAIN = 0.9  # a stack must be at least 10% faster per coalition than single runs to be chosen
TUNE_REPEATS = 3


@dataclass
class FastPathInfo:
    """What the fast path does for a game (reported in run metadata and by benchmarks)."""

    cut: bool
    prefix_ops: int
    reduction: str | None
    stack: int | None  # None until tuned


class FastPath:
    """Sessions for the suffix (and prefix) of an instrumented model, for one output and reduction.

    `stack`: coalitions per run, or None to size it automatically per data batch size. `pinned`: data
    buffers shared by every bound batch (on by itself with CUDA graphs; see BoundBatch).

    `vary`: indices of the unit layers whose masks change between coalitions (default: all). The cut
    then falls before the earliest of their masks, and every other layer before the cut runs with all its
    units kept: the path evaluates only coalitions that keep those units (what leave-one-out needs: for a
    unit of layer L, the network up to L's mask is the same for all of L's units). `inferred`: the
    instrumented model after shape inference, when the caller has it (saves inferring it per path).
    """

    def __init__(
        self,
        inst: MaskedModel,
        output: str,
        reduction: str | None = None,
        cut: bool = True,
        stack: int | None = None,
        pinned: bool | None = None,
        vary: Collection[int] | None = None,
        inferred: onnx.ModelProto | None = None,
    ):
        self.inst: MaskedModel = inst
        self.output = output
        self.reduction = reduction
        self.stack = stack
        layers = inst.units.layers
        all_masks = {layer.mask_input for layer in layers}
        self.vary = None if vary is None else sorted({int(i) for i in vary})
        masks = all_masks if self.vary is None else {layers[i].mask_input for i in self.vary}
        graph_cut: GraphCut | None = (
            cut_before_masks(inst.model, masks, outputs=[output], inferred=inferred) if cut else None
        )
        suffix = graph_cut.suffix if graph_cut is not None else keep_outputs(inst.model, [output])
        # Masks the prefix reads are held at 1 (every unit of those layers kept); the suffix reads the others.
        self.fixed_masks = [] if graph_cut is None else [n for n in graph_cut.prefix_inputs if n in all_masks]
        fixed = [layer for layer in layers if layer.mask_input in self.fixed_masks]
        self._fixed_units = np.concatenate(
            [np.arange(la.offset, la.offset + la.channels) for la in fixed] or [np.zeros(0, np.intp)]
        )
        self.out_names = [output]
        if reduction is not None:
            suffix, self.out_names = append_reduction(suffix, output, reduction)
        self.cut = graph_cut
        self.prefix_session = (
            inst.session_for(graph_cut.prefix, spin=False).session if graph_cut is not None else None
        )
        self._suffix = suffix
        try:
            self._open_suffix()
        except ModelError:
            if graph_cut is None:
                raise
            # Inferred frontier shapes contradict the graph (odd exports): declare them free.
            ranks = {
                i.name: len(i.type.tensor_type.shape.dim)
                for i in suffix.graph.input
                if i.name in graph_cut.frontier
            }
            self._suffix = free_input_dims(suffix, ranks)
            self._open_suffix()
        self.device = "cuda" if self.info.provider == "cuda" else "cpu"
        self.cuda_graph = self.info.cuda_graph
        self.pinned = self.cuda_graph if pinned is None else pinned
        self.pinned_slots: dict[tuple[int, int], _Slot] = {}
        if self.cuda_graph and self.stack is None:
            self.stack = 1  # one captured graph per stack size: no tuning over sizes
        self._tuned: dict[int, int] = {}  # items per batch -> chosen stack
        self._run_options: dict[int, object] = {}

    def _open_suffix(self) -> None:
        info = self.inst.session_for(self._suffix, cuda_graph=True)
        self.info = info
        self.evaluator = MaskedEvaluator(info, self.inst.units)
        self.session = info.session

    def _check_frontier(self, feeds: dict[str, np.ndarray]) -> None:
        """Shape inference can be wrong on odd exports: if the prefix's real outputs contradict the
        suffix's declared inputs, declare those inputs with free dimensions instead (once)."""
        metas = {m.name: m for m in input_metas(self.session)}
        bad = [
            name
            for name, arr in feeds.items()
            if name in metas
            and (
                len(metas[name].shape) != arr.ndim
                or any(
                    isinstance(d, int) and d != a for d, a in zip(metas[name].shape, arr.shape, strict=False)
                )
            )
        ]
        if bad:
            log.info("fast path: inferred shapes of %s are wrong; declaring them free", ", ".join(bad))
            self._suffix = free_input_dims(self._suffix, {n: feeds[n].ndim for n in bad})
            self._open_suffix()

    def run_options(self, graph_id: int):
        """RunOptions selecting the CUDA graph of a buffer set (-1: no capture), or None without graphs."""
        if not self.cuda_graph:
            return None
        if graph_id not in self._run_options:
            opts = import_ort().RunOptions()
            opts.add_run_config_entry("gpu_graph_id", str(graph_id))
            self._run_options[graph_id] = opts
        return self._run_options[graph_id]

    def describe(self) -> FastPathInfo:
        """What this fast path does."""
        tuned = sorted(set(self._tuned.values()))
        return FastPathInfo(
            cut=self.cut is not None,
            prefix_ops=len(self.cut.prefix_ops) if self.cut is not None else 0,
            reduction=self.reduction,
            stack=self.stack if self.stack is not None else (tuned[0] if len(tuned) == 1 else None),
        )

    def bind(self, inputs: Mapping[str, np.ndarray]) -> BoundBatch | ChunkedBatch:
        """Run the prefix on a data batch and bind the result: the game's evaluations start from here.

        A model with a fixed batch size gets one bound batch per chunk of that size (see ChunkedBatch)."""
        masks = {la.mask_input for la in self.inst.units.layers}
        full = prepare_inputs(self.inst.evaluator.session, inputs, masks, fixed_batch=True)
        plan = plan_chunks(input_metas(self.inst.evaluator.session), full)
        if plan is None:
            return self._bind(full)
        if self.reduction == "mean-items":
            raise DataError(
                f"the model's batch is fixed at {plan.size}: the in-graph mean over items needs a free batch "
                "(use no reduction)"
            )
        return ChunkedBatch([self._bind(chunk) for chunk, _ in plan.chunks(full)], plan)

    def _bind(self, full: dict[str, np.ndarray]) -> BoundBatch:
        masks = {la.mask_input for la in self.inst.units.layers}
        if self.cut is None:
            names = [m.name for m in input_metas(self.session, full)]
            feeds = {n: full[n] for n in names}
        else:
            ones = self.inst.evaluator.masks_for(np.ones((1, self.inst.n_units), bool))
            pre_feeds = {n: full[n] if n in full else ones[n] for n in self.cut.prefix_inputs}
            values = run_session(self.prefix_session, self.cut.frontier, pre_feeds)
            feeds = dict(zip(self.cut.frontier, values, strict=True))
            self._check_frontier(feeds)
            feeds.update({n: full[n] for n in self.cut.passthrough if n not in masks})
        n_items = next((len(a) for a in full.values() if a.ndim), 1)
        return BoundBatch(self, feeds, n_items)

    @property
    def stack_blocker(self) -> str | None:
        """Why coalitions cannot be stacked along the batch here (the suffix's inputs or the model's own:
        a fixed batch of the model's inputs holds for a suffix whose inferred shapes lost it), or None."""
        return self.evaluator.stack_blocker or self.inst.evaluator.stack_blocker

    def check_kept(self, coalitions: np.ndarray) -> None:
        """Refuse coalitions that remove a unit the prefix holds kept (see `vary`)."""
        if self._fixed_units.size and not coalitions[:, self._fixed_units].all():
            raise ValueError(
                "this fast path varies only some layers' masks; a coalition removes a unit of another layer"
            )


@dataclass
class _Slot:
    """Device buffers bound once for stacks of k coalitions on a batch of n items."""

    binding: object
    data: dict  # input name -> OrtValue
    masks: dict  # mask input (and reduce shape) -> OrtValue
    outputs: list | None = None  # output OrtValues, bound after the first run
    owner: object = None  # the batch whose data the buffers hold (pinned mode)
    graph_id: int = -1


class BoundBatch:
    """One data batch bound to the device; evaluates coalitions of units on it.

    Normally each batch owns its buffers. In pinned mode (CUDA graphs: a captured graph replays on fixed
    addresses) the fast path owns one set of buffers per (items, stack) and a batch copies its data in
    when another batch used them last; each such set gets its own CUDA graph id.
    """

    def __init__(self, path: FastPath, feeds: dict[str, np.ndarray], n_items: int):
        self.path = path
        self.feeds = feeds
        self.n_items = n_items
        self._slots: dict[int, _Slot] = {}
        self._token = object()

    # -- binding -----------------------------------------------------------------------------
    def _tiled(self, k: int) -> dict[str, np.ndarray]:
        return {
            name: np.ascontiguousarray(np.concatenate([arr] * k, axis=0) if k > 1 else arr)
            for name, arr in self.feeds.items()
        }

    def _slot(self, k: int) -> _Slot:
        """The buffers for stacks of k coalitions, made once (and loaded with this batch's data)."""
        path = self.path
        slots = path.pinned_slots if path.pinned else self._slots
        key = (self.n_items, k) if path.pinned else k
        slot = slots.get(key)
        if slot is not None:
            if slot.owner is not self._token:  # pinned: another batch used these buffers last
                for name, arr in self._tiled(k).items():
                    slot.data[name].update_inplace(arr)
                slot.owner = self._token
            return slot
        ort = import_ort()
        binding = path.session.io_binding()
        # On the CPU an OrtValue wraps the numpy memory: pinned buffers are written in place, so they
        # must not be this batch's own arrays.
        tiled = self._tiled(k)
        if path.pinned:
            tiled = {name: np.array(arr, copy=True) for name, arr in tiled.items()}
        data = {name: ort.OrtValue.ortvalue_from_numpy(arr, path.device, 0) for name, arr in tiled.items()}
        masks = path.evaluator.masks_for(np.ones((k, path.inst.n_units), bool), repeat=self._repeat(k))
        buffers = {
            name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a), path.device, 0)
            for name, a in masks.items()
        }
        if path.reduction == "mean-items":
            shape = np.array([k, self.n_items, -1], np.int64)
            buffers[REDUCE_SHAPE_INPUT] = ort.OrtValue.ortvalue_from_numpy(shape, path.device, 0)
        for name, value in {**data, **buffers}.items():
            binding.bind_ortvalue_input(name, value)
        slot = _Slot(binding, data, buffers, owner=self._token)
        if path.pinned:
            slot.graph_id = len(slots) + 1
        slots[key] = slot
        return slot

    def _repeat(self, k: int) -> int:
        return 1 if k == 1 else self.n_items

    def _run(self, block: np.ndarray) -> list[np.ndarray]:
        """Outputs of one run over a stack of coalitions, one array per coalition."""
        path = self.path
        k = len(block)
        slot = self._slot(k)
        for name, arr in path.evaluator.masks_for(block, repeat=self._repeat(k)).items():
            slot.masks[name].update_inplace(np.ascontiguousarray(arr))
        binding = slot.binding
        first = slot.outputs is None
        if first:
            for name in path.out_names:
                binding.bind_output(name, path.device)
        try:
            # The first run of a slot allocates its outputs; CUDA graphs are captured from the second.
            path.session.run_with_iobinding(binding, path.run_options(-1 if first else slot.graph_id))
        except Exception as exc:
            # run_with_iobinding raises plain RuntimeErrors as well as onnxruntime's own exceptions.
            if type(exc).__module__.startswith("onnxruntime") or type(exc) is RuntimeError:
                raise ort_failure(exc) from None
            raise
        results = binding.get_outputs()
        if first:
            # Keep the output buffers bound from now on: their shapes do not change between coalitions.
            for name, value in zip(path.out_names, results, strict=True):
                binding.bind_ortvalue_output(name, value)
            slot.outputs = list(results)
        arr = np.array(results[0].numpy(), copy=True)  # the buffer is overwritten by the next run
        if len(results) > 1:
            finite = bool(np.isfinite(results[1].numpy()).all())
        else:
            finite = not np.issubdtype(arr.dtype, np.floating) or bool(np.isfinite(arr).all())
        if not finite:
            self._non_finite(block)
        if path.reduction == "mean-items":  # [k, M]: one row per coalition
            return list(arr)
        return [arr] if k == 1 else np.split(arr, k, axis=0)

    def _non_finite(self, block: np.ndarray) -> None:
        kept = int(block[0].sum()) if len(block) == 1 else None
        if kept is None:  # find the coalition of the stack that produced it
            for row in block:
                self._run(row[None])
        raise non_finite_output(self.path.output, kept, self.path.inst.n_units)

    # -- stacking ----------------------------------------------------------------------------
    def _stack_candidates(self) -> list[int]:
        if self.path.stack_blocker is not None or any(
            a.ndim == 0 or len(a) != self.n_items for a in self.feeds.values()
        ):
            return [1]
        per_copy = sum(a.nbytes for a in self.feeds.values())
        return [k for k in STACK_CANDIDATES if k == 1 or k * per_copy <= STACK_MAX_BYTES]

    def _tune(self, coalitions: np.ndarray) -> tuple[int, list[np.ndarray]]:
        """Pick the stack size on the first coalitions (their outputs are kept, nothing is wasted).

        Each candidate size runs the same sample of coalitions, the sizes interleaved over a few
        repetitions and the fastest repetition kept (robust to load spikes); a size is chosen only when
        its outputs equal single runs' bit for bit and it is clearly faster (STACK_GAIN).
        """
        cands = self._stack_candidates()
        sample = coalitions[: max(cands)]
        start = time.perf_counter()
        ref = [self._run(sample[i : i + 1])[0] for i in range(len(sample))]
        single = (time.perf_counter() - start) / len(sample)
        if len(cands) == 1 or single > TUNE_MAX_RUN_SECONDS or len(sample) < 2:
            return 1, ref
        sizes = [k for k in cands if k <= len(sample)]
        usable = {1}
        for k in sizes[1:]:
            try:
                outs = [
                    o
                    for i in range(0, len(sample) - len(sample) % k, k)
                    for o in self._run(sample[i : i + k])
                ]
            except DataError:  # e.g. a Reshape that fixes the batch size inside the graph
                continue
            if all(np.array_equal(a, b) for a, b in zip(outs, ref, strict=False)):
                usable.add(k)
        best_of = {k: np.inf for k in usable}
        for _ in range(TUNE_REPEATS):
            for k in sorted(usable):
                n = len(sample) - len(sample) % k
                start = time.perf_counter()
                for i in range(0, n, k):
                    self._run(sample[i : i + k])
                best_of[k] = min(best_of[k], (time.perf_counter() - start) / n)
        log.debug("stack tuning (s per coalition): %s", best_of)
        best = min(best_of, key=best_of.get)
        return (best if best_of[best] < STACK_GAIN * best_of[1] else 1), ref

    def evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        """Outputs (reduced when asked) for each coalition: bool [m, n_units] -> [m, ...]."""
        c = self.path.evaluator.check_coalitions(coalitions)
        path = self.path
        path.check_kept(c)
        stack = path.stack
        parts: list[np.ndarray] = []
        if stack is None:
            stack = path._tuned.get(self.n_items)
            if stack is None and len(c) >= 2:
                stack, parts = self._tune(c)
                path._tuned[self.n_items] = stack
            stack = stack or 1
        elif stack > 1 and len(self._stack_candidates()) == 1:
            reason = path.stack_blocker or "an input has no batch axis"
            raise DataError(f"stacking coalitions is not possible: {reason}")
        for start in range(len(parts), len(c), stack):
            parts.extend(self._run(c[start : start + stack]))
        shapes = {p.shape for p in parts}
        if len(shapes) > 1:
            raise DataError(
                f"output {path.output!r} changes shape between coalitions; read a fixed-shape output"
            )
        return np.stack(parts)


class ChunkedBatch:
    """The data items of a fixed-batch model, bound as one BoundBatch per chunk of the model's batch size;
    evaluates coalitions on every chunk and puts the items back together (padding dropped)."""

    def __init__(self, batches: list[BoundBatch], plan: ItemChunks):
        self.batches = batches
        self.plan = plan
        self.n_items = plan.n_items

    def evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        """Outputs for each coalition: bool [m, n_units] -> [m, n_items, ...]."""
        parts = [batch.evaluate(coalitions) for batch in self.batches]
        return self.plan.merge(parts, axis=1, name=self.batches[0].path.output)
