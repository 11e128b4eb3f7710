"""AuditConfig: everything an audit (`onnxshap run`, `onnxshap check`) can be told."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class AuditConfig:
    """Everything `onnxshap run` can be told (the CLI maps its options one to one)."""

    model: Path
    data: Path | None = None
    out: Path = Path("runs/latest")
    metric: str = "accuracy"
    estimator: str = "tmab"
    top_k: int | None = None  # None: 30, capped at the number of units - 1
    seed: int = 0
    max_evals: int | None = None
    max_seconds: float | None = None
    evals_per_player: int | None = None  # budget given neither max: None -> Estimator.default_budget
    delta: float | None = None
    images: int | None = 128
    split: float = 0.5
    units: str = "conv"
    placement: str = "after-chain"
    exclude: str | None = None
    provider: str = "auto"
    provider_options: dict[str, str] = field(default_factory=dict)  # CUDA EP options (KEY: VALUE)
    fast_path: bool = True  # graph cut, bound batch, in-graph reduction (onnxshap.runtime.fast_path)
    stack: int | None = None  # coalitions per run; None: sized automatically
    output: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)  # spec overrides for image folders
    spec: Path | None = None
    eps: float | None = None
    queries: int | None = None
    adversarial_data: Path | None = None
    resume: bool = False
    progress: bool | None = None
    baselines: bool = True
    backend: str = "local"  # "ray": permutations walked by Ray actors (onnxshap.distributed)
    address: str | None = None  # ray: cluster address (auto | HOST:PORT)
    workers: int | None = None  # ray: number of actors
    extra: dict[str, Any] = field(default_factory=dict)  # further estimator parameters
    players: str = "channels"  # channels | layers | blocks:D | groups:FILE (onnxshap.players)
    removal: str = "zero"  # zero | mean: what a removed unit outputs
    lesion: list[str] = field(default_factory=list)  # players / units / layers removed for good
    lesion_run: Path | None = None  # lesion the top `lesion_top` players of this run folder
    lesion_top: int | None = None
    checkpoint_seconds: float = 30.0  # the checkpoint is written at least this often (inside rounds too)
