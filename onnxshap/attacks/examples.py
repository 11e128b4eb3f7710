"""Adversarial examples for the `adversarial` game: made once against the full model, cached, reused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from onnxshap.attacks.cache import load_or_generate
from onnxshap.attacks.square import (
    DEFAULT_EPS,
    DEFAULT_MAX_QUERIES,
    DEFAULT_P_INIT,
    AttackResult,
    square_attack,
)
from onnxshap.data import Dataset
from onnxshap.errors import DataError

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel


def adversarial_dataset(
    inst: MaskedModel,
    data: Dataset,
    eps: float = DEFAULT_EPS,
    max_queries: int = DEFAULT_MAX_QUERIES,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    output: str | None = None,
    channel_axis: int | None = None,
    progress: bool = False,
) -> tuple[Dataset, AttackResult]:
    """Square-Attack examples of `data` against the unmasked model, as a Dataset (labels and groups kept).

    With `cache_dir` the examples are saved under a key of (model sha256, data fingerprint, eps, queries,
    seed, p_init) and reused, so the game stays fixed across runs and resumes.
    """
    if data.labels is None:
        raise DataError("the adversarial metric needs labels to attack")
    if len(data.inputs) != 1:
        raise DataError("the built-in attack handles single-input models; pass --adversarial-data instead")
    name, x = next(iter(inst.bind(data.inputs).items()))
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError("the built-in attack needs float inputs")
    out = output or inst.evaluator.output_names[0]
    if channel_axis is None:
        channel_axis = -1 if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3) else 1
    lo, hi = float(x.min()), float(x.max())

    def predict(batch: np.ndarray) -> np.ndarray:
        return inst.run_original({name: batch}, outputs=[out])[out]

    def generate() -> AttackResult:
        return square_attack(
            predict,
            x,
            data.labels,
            eps=eps,
            max_queries=max_queries,
            seed=seed,
            p_init=DEFAULT_P_INIT,
            clip=(lo, hi),
            channel_axis=channel_axis,
            progress=progress,
        )

    if cache_dir is None:
        result = generate()
    else:
        key = {
            "model_sha256": inst.units.model_sha256,
            "data": data.fingerprint(),
            "eps": eps,
            "max_queries": max_queries,
            "seed": seed,
            "p_init": DEFAULT_P_INIT,
            "targeted": False,
            "clip": [lo, hi],
            "channel_axis": channel_axis,
            "output": out,
        }
        result = load_or_generate(Path(cache_dir), key, generate)
    adv = Dataset(
        inputs={name: result.x_adv.astype(x.dtype)},
        labels=data.labels,
        groups=data.groups,
        names=data.names,
        source=f"square-attack(eps={eps}, queries={max_queries}) of {data.source}",
    )
    return adv, result
