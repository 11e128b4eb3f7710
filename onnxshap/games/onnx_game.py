"""The ONNX-backed game: an instrumented model, a data batch and a metric."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import onnx

from onnxshap.data.strata import cell_values, strata_of, stratified_draw
from onnxshap.deadline import check as check_deadline
from onnxshap.errors import DataError, ModelError
from onnxshap.games.base import Game, GameError
from onnxshap.metrics import Metric, get_metric
from onnxshap.runtime.evaluator import non_finite_output
from onnxshap.runtime.fast_path import FastPath

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel

log = logging.getLogger(__name__)

OUTPUT_BYTES_PER_CALL = 64 << 20  # keep a call's stacked outputs under ~64 MB


class OnnxGame(Game):
    """v(S) = metric of the model with only the units in S kept, on the given data items.

    `inst` is an `onnxshap.Instrumented`; `inputs` one array (single-input models) or {name: array};
    `metric` a Metric or its name (see `onnxshap.metrics.get_metric`); `output` the model output the metric
    reads (default: the first). `subgame(rng, size)` values the same game on `size` random items.

    `fast` (default) evaluates through `inst.fast_path`: the graph prefix before the first mask runs once
    per data batch, the batch stays bound on the device, the metric's reduction (predicted classes, mean
    over items) runs inside the graph, and coalitions are stacked when that is faster and bit-identical
    (`stack`: a fixed number per run instead). `fast=False` runs the whole instrumented model per call.
    """

    def __init__(
        self,
        inst: MaskedModel,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        labels: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        metric: Metric | str = "accuracy",
        output: str | None = None,
        batch_size: int | None = None,
        fast: bool = True,
        stack: int | None = None,
        _item_shape: tuple[int, ...] | None = None,
    ):
        self.inst: MaskedModel = inst
        self.inputs = inst.bind(inputs)
        self.n_items = len(next(iter(self.inputs.values())))
        if self.n_items == 0:
            raise DataError("no data items to value the game on")
        self.labels = None if labels is None else np.asarray(labels)
        self.groups = None if groups is None else np.asarray(groups)
        for name, arr in (("labels", self.labels), ("groups", self.groups)):
            if arr is not None and len(arr) != self.n_items:
                raise DataError(f"{len(arr)} {name} for {self.n_items} data items")
        self.metric = get_metric(metric) if isinstance(metric, str) else metric
        outputs = inst.evaluator.output_names
        self.output = output or outputs[0]
        if self.output not in outputs:
            raise DataError(f"the model has no output {self.output!r} (outputs: {', '.join(outputs)})")
        self.fast = fast
        self.stack = stack
        self.chunks = inst.item_chunks(self.inputs)  # runs of the model's fixed batch size, if it has one
        self._bound = None
        self._loo = None  # (layer indices, bound batch of the fast path cut at the first one's mask)
        self._inferred = None  # the instrumented model after shape inference (for per-layer cuts)
        if _item_shape is None:
            reference = self._outputs(np.ones((1, inst.n_units), bool))[0]
            self.metric.check_data(self.labels, self.groups, tuple(reference.shape[1:]))
            self.metric.prepare(reference, self.labels, self.groups)
            _item_shape = tuple(reference.shape[1:])
        self.item_shape = tuple(_item_shape)
        per_coalition = self._per_coalition_bytes()
        auto_batch = int(np.clip(OUTPUT_BYTES_PER_CALL // max(per_coalition, 1), 1, 256))
        super().__init__(
            inst.n_units,
            value_shape=tuple(self.metric.value_shape),
            batch_size=batch_size or auto_batch,
            value_range=self.metric.value_range,
        )

    def _per_coalition_bytes(self) -> int:
        meta = next(o for o in self.inst.evaluator.session.get_outputs() if o.name == self.output)
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in meta.shape[1:]]
        return self.n_items * int(np.prod(dims, dtype=np.int64)) * 4

    def _outputs(self, coalitions: np.ndarray) -> np.ndarray:
        out = self.inst.evaluate(coalitions, self.inputs, outputs=[self.output])[self.output]
        if np.issubdtype(out.dtype, np.floating) and not np.isfinite(out).all():
            bad = int(np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))[0])
            kept = int(coalitions[bad].sum())
            raise non_finite_output(self.output, kept, self.inst.n_units)
        return out

    def reduction(self) -> str | None:
        """The metric's reduction when it can run inside the graph for this output, else None."""
        kind = self.metric.reduction
        # argmax: class scores [N, K] or [N, K, 1, ...] only (what the metric's own argmax accepts).
        scores = bool(self.item_shape) and int(np.prod(self.item_shape[1:], dtype=np.int64)) == 1
        if kind == "argmax" and not scores:
            return None
        if kind == "argmax-last" and len(self.item_shape) < 2:  # per-step scores [T, C] only
            return None
        if kind == "mean-items" and self.chunks is not None:
            return None  # the items are run in chunks of a fixed batch: the mean is taken outside
        return kind if kind in ("argmax", "argmax-last", "mean-items") else None

    def fast_path(self):
        """The instrumented model's fast path this game evaluates through."""
        return self.inst.fast_path(self.output, self.reduction(), stack=self.stack)

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        if not self.fast:
            return self.metric(self._outputs(coalitions), self.labels, self.groups)
        if self._bound is None:
            self._bound = self.fast_path().bind(self.inputs)
        return self._metric_of(self._bound.evaluate(coalitions))

    def _metric_of(self, out: np.ndarray) -> np.ndarray:
        """The metric of fast-path outputs (reduced in the graph when the metric allows)."""
        kind = self.reduction()
        if kind is None:
            return self.metric(out, self.labels, self.groups)
        if kind == "mean-items":
            out = out.reshape(len(out), *self.item_shape)
        return self.metric.from_reduced(out, self.labels, self.groups)

    def leave_one_out(self, players: np.ndarray | None = None) -> np.ndarray:
        """v(all) - v(all without i) for each player i, each layer's units on that layer's suffix only.

        For a unit of layer L every other unit is kept, so the network up to L's mask is the same for all
        of L's units: it runs once per data batch, and each unit is valued on the graph from L's mask on
        (masks of later layers at 1), through the fast path (bound batch, in-graph reduction, stacking).
        The outputs equal the whole model's bit for bit where ONNX Runtime fuses the same nodes in the cut
        graph (every shipped and third-party model but ppocrv6_rec, whose LayerNorms fuse differently:
        ~1e-6 relative, as with the coalition loop's own cut). One layer's sessions exist at a time.
        Units inside If/Loop/Scan bodies, layers the graph cannot be cut at (or whose cut graph ONNX
        Runtime refuses) and `fast=False` games take the plain path (one evaluation of the whole model
        per unit).
        """
        idx = np.arange(self.n_players) if players is None else np.asarray(players, dtype=np.intp)
        if not self.fast or len(idx) == 0:
            return super().leave_one_out(idx)
        values = self.values_without([idx[i : i + 1] for i in range(len(idx))])
        return np.asarray(self.v_all, dtype=np.float64) - values

    def values_without(self, sets: Sequence[np.ndarray], base: np.ndarray | None = None) -> np.ndarray:
        """v(base without S) for each set S of units (``base``: a keep-mask, default every unit kept).

        The network before the earliest layer that S or ``base`` touches is the same as with every unit
        kept, so each set is valued on the graph cut there (the cut's masks vary at the layers touched,
        later masks at 1): the per-layer cut of leave-one-out, for whole groups (layers, heads, experts)
        and lesions too. Sets sharing their layers share one cut; sets the graph cannot be cut for take
        the plain path.
        """
        n = self.n_players
        keep = np.ones(n, dtype=np.bool_) if base is None else np.asarray(base, dtype=np.bool_)

        def coal(rows: np.ndarray) -> np.ndarray:  # built per batch: all rows at once can be n^2 bytes
            c = np.repeat(keep[None, :], len(rows), axis=0)
            for r, row in enumerate(rows):
                c[r, np.asarray(sets[row], dtype=np.intp)] = False
            return c

        out = np.empty((len(sets), *self.value_shape), dtype=np.float64)
        if not self.fast:
            return self(coal(np.arange(len(sets)))) if len(sets) else out
        units = self.inst.units
        layer_of = units.unit_layers()
        fixed_off = tuple(np.unique(layer_of[~keep]).tolist())
        buckets: dict[tuple[int, ...], list[int]] = {}  # the layers a cut varies -> the sets it values
        for r, members in enumerate(sets):
            touched = set(layer_of[np.asarray(members, dtype=np.intp)].tolist())
            buckets.setdefault(tuple(sorted(touched.union(fixed_off))), []).append(r)
        plain: list[int] = []
        for key, rows in buckets.items():
            where = np.asarray(rows, dtype=np.intp)
            bound = self._loo_bound(key)
            if bound is None:
                plain.extend(where.tolist())
                continue
            for start in range(0, len(where), self.batch_size):
                part = where[start : start + self.batch_size]
                check_deadline()
                out[part] = self._checked_values(self._metric_of(bound.evaluate(coal(part))), len(part))
            layer = units.layers[key[-1]]
            done = np.concatenate([np.asarray(sets[r], dtype=np.intp) for r in where])
            if len(key) > 1 or fixed_off or done.max() == layer.offset + layer.channels - 1:
                self._loo = None  # the layer's last unit is done (or a one-off cut): release its sessions
        if self._loo is None:
            self._inferred = None  # no layer left half done: keep no copy of the model either
        if plain:
            rest = np.asarray(plain, dtype=np.intp)
            out[rest] = self(coal(rest))
        return out

    def _loo_bound(self, layers: tuple[int, ...]):
        """The bound batch of the fast path cut at the earliest of ``layers``' masks, those masks varying
        (kept until other layers are asked for), or None when they take the plain path."""
        if self._loo is not None and self._loo[0] == layers:
            return self._loo[1]
        self._loo = None  # release the previous layer's sessions before building the next ones
        if any(self.inst.units.layers[i].graph != "main" for i in layers):
            return None
        if self._inferred is None:
            self._inferred = onnx.shape_inference.infer_shapes(
                self.inst.model, check_type=False, strict_mode=False
            )
        try:
            path = FastPath(
                self.inst,
                self.output,
                self.reduction(),
                stack=self.stack,
                vary=list(layers),
                inferred=self._inferred,
            )
        except ModelError as exc:  # ONNX Runtime refuses the cut graph: the whole model still runs
            log.info("leave-one-out: no cut at layers %s (%s)", layers, exc)
            return None
        if path.cut is None:
            return None
        bound = path.bind(self.inputs)
        self._loo = (layers, bound)
        return bound

    def _checked_values(self, values: np.ndarray, m: int) -> np.ndarray:
        """Metric values as float64 [m, *value_shape], finite, counted as evaluations (as Game.__call__)."""
        vals = np.array(values, dtype=np.float64)
        if vals.shape != (m, *self.value_shape):
            raise GameError(f"{type(self).__name__} returned values of shape {vals.shape} for {m} coalitions")
        if not np.isfinite(vals).all():
            raise GameError(f"{type(self).__name__} returned a non-finite value")
        self.evaluations += m
        return vals

    def __getstate__(self) -> dict:
        """Pickled without runtime state (data bound to a session); the copy rebuilds it on first use."""
        state = dict(self.__dict__)
        for key in ("_bound", "_loo", "_inferred"):
            if key in state:
                state[key] = None
        return state

    def with_data(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        labels: np.ndarray | None,
        groups: np.ndarray | None,
    ) -> OnnxGame:
        """The same model and (already prepared) metric on other items, e.g. the held-out split (checked by
        the metric first: labels of the model's classes, the groups it fixed present, ...)."""
        self.metric.check_data(
            None if labels is None else np.asarray(labels),
            None if groups is None else np.asarray(groups),
            self.item_shape,
        )
        return OnnxGame(
            self.inst,
            inputs,
            labels,
            groups,
            metric=self.metric,
            output=self.output,
            fast=self.fast,
            stack=self.stack,
            _item_shape=self.item_shape,
        )

    @cached_property
    def draw_strata(self) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """(stratum of each item: label x group, None without either; per stratum, its class and its group)."""
        strata = strata_of(self.labels, self.groups)
        covers: dict[str, np.ndarray] = {}
        for attr, values in (("labels", self.labels), ("groups", self.groups)):
            if strata is not None and values is not None and np.asarray(values).ndim == 1:
                covers[attr] = cell_values(strata, values)
        return strata, covers

    def min_draw_size(self) -> int:
        """Smallest batch `subgame` accepts: one item of each class / group the metric needs in every batch."""
        _, covers = self.draw_strata
        return max([int(covers[a].max()) + 1 for a in self.metric.batch_needs if a in covers], default=1)

    def check_draw_size(self, size: int | None) -> None:
        """DataError unless batches of `size` items can hold what the metric needs (call it before any work)."""
        need = self.min_draw_size()
        if size is not None and size < min(need, self.n_items):
            what = " and ".join("class" if a == "labels" else "group" for a in self.metric.batch_needs)
            raise DataError(
                f"{self.metric.name} needs every {what} of its data in each drawn batch: {need} of them, "
                f"so draw at least {need} items per permutation (--images {need}), not {size}"
            )

    def subgame(self, rng: np.random.Generator, size: int | None) -> OnnxGame:
        """The same model and metric on `size` items drawn without replacement (all items if size >= N).

        The draw is stratified by label x group like the held-out split: each stratum gets its share of the
        batch on average, and every class and every group of the data at least one item whenever `size`
        allows it (the metric's needs first: per-class needs every class, fairness every group; a batch too
        small for them is refused, see `check_draw_size`). Unlabelled data without groups: a plain draw.
        """
        if size is None or size >= self.n_items:
            return self
        strata, covers = self.draw_strata
        if strata is None:
            idx = np.sort(rng.choice(self.n_items, size=size, replace=False))
        else:
            self.check_draw_size(size)
            order = [a for a in self.metric.batch_needs if a in covers]
            order += [a for a in covers if a not in order]
            idx = stratified_draw(strata, size, rng, [covers[a] for a in order])
        return OnnxGame(
            self.inst,
            {k: v[idx] for k, v in self.inputs.items()},
            None if self.labels is None else self.labels[idx],
            None if self.groups is None else self.groups[idx],
            metric=self.metric,
            output=self.output,
            batch_size=self.batch_size,
            fast=self.fast,
            stack=self.stack,
            _item_shape=self.item_shape,
        )
