"""The ONNX-backed game: an instrumented model, a data batch and a metric."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from onnxshap.errors import DataError
from onnxshap.games.base import Game
from onnxshap.metrics import Metric, get_metric

OUTPUT_BYTES_PER_CALL = 64 << 20  # keep a call's stacked outputs under ~64 MB


class OnnxGame(Game):
    """v(S) = metric of the model with only the units in S kept, on the given data items.

    `inst` is an `onnxshap.Instrumented`; `inputs` one array (single-input models) or {name: array};
    `metric` a Metric or its name (see `onnxshap.metrics.get_metric`); `output` the model output the metric
    reads (default: the first). `subgame(rng, size)` values the same game on `size` random items.
    """

    def __init__(
        self,
        inst,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        labels: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        metric: Metric | str = "accuracy",
        output: str | None = None,
        batch_size: int | None = None,
        _prepared: bool = False,
    ):
        self.inst = inst
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
        if not _prepared:
            reference = self._outputs(np.ones((1, inst.n_units), bool))[0]
            self.metric.prepare(reference, self.labels, self.groups)
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
            raise DataError(
                f"the model output {self.output!r} has NaN/inf values with {kept} of {self.inst.n_units} "
                "units kept; check the inputs' scale and the model"
            )
        return out

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self.metric(self._outputs(coalitions), self.labels, self.groups)

    def __getstate__(self) -> dict:
        """Pickled without runtime state (data bound to a session); the copy rebuilds it on first use."""
        state = dict(self.__dict__)
        if "_bound" in state:
            state["_bound"] = None
        return state

    def with_data(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        labels: np.ndarray | None,
        groups: np.ndarray | None,
    ) -> OnnxGame:
        """The same model and (already prepared) metric on other items, e.g. the held-out split."""
        return OnnxGame(
            self.inst, inputs, labels, groups, metric=self.metric, output=self.output, _prepared=True
        )

    def subgame(self, rng: np.random.Generator, size: int | None) -> OnnxGame:
        """The same model and metric on `size` items drawn without replacement (all items if size >= N)."""
        if size is None or size >= self.n_items:
            return self
        idx = np.sort(rng.choice(self.n_items, size=size, replace=False))
        return OnnxGame(
            self.inst,
            {k: v[idx] for k, v in self.inputs.items()},
            None if self.labels is None else self.labels[idx],
            None if self.groups is None else self.groups[idx],
            metric=self.metric,
            output=self.output,
            batch_size=self.batch_size,
            _prepared=True,
        )
