"""`run_audit`: instrument, load data, value the game, write the run folder, measure removal curves."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxshap.audit.curves import area, random_curve, removal_curve, removal_steps
from onnxshap.audit.runfolder import RunFolder
from onnxshap.errors import DataError

DEFAULT_EVALS_PER_UNIT = 100
ADVERSARIAL_METRICS = ("adversarial", "robustness")


@dataclass
class AuditConfig:
    """Everything `onnxshap run` can be told (the CLI maps its options one to one)."""

    model: Path
    data: Path | None = None
    out: Path = Path("runs/latest")
    metric: str = "accuracy"
    estimator: str = "tmab"
    top_k: int = 30
    seed: int = 0
    max_evals: int | None = None
    max_seconds: float | None = None
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


def default_data(model: Path) -> Path:
    """The data shipped with a fixture model (models/fixtures.json), for runs without --data."""
    import json

    manifest = model.resolve().parent / "fixtures.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text()):
            if entry.get("file") == model.name and entry.get("data"):
                return manifest.parent / entry["data"]
    raise DataError(f"--data is required for {model.name} (no shipped data found for it)")


def _load(cfg: AuditConfig, inst):
    from onnxshap.data import load_data

    metas = [m for m in inst.evaluator.session.get_inputs() if m.name in inst.input_names]
    path = cfg.data or default_data(cfg.model)
    return load_data(path, input_metas=metas, spec=cfg.spec, **cfg.preprocess), path


def _estimator_params(cfg: AuditConfig) -> dict[str, Any]:
    from onnxshap.estimators import parameters

    accepted = parameters(cfg.estimator)
    params = dict(cfg.extra)
    if cfg.delta is not None:
        params["delta"] = cfg.delta
    if cfg.images is not None and "images" in accepted:
        params["images"] = cfg.images
    return params


def _games(cfg: AuditConfig, inst, data, folder: RunFolder):
    from onnxshap.games.onnx_game import OnnxGame

    valuation, held_out = data.split(cfg.split, seed=cfg.seed) if cfg.split > 0 else (data, None)
    if cfg.metric in ADVERSARIAL_METRICS:
        if cfg.adversarial_data is not None:
            from onnxshap.data import load_data

            metas = [m for m in inst.evaluator.session.get_inputs() if m.name in inst.input_names]
            adv = load_data(cfg.adversarial_data, input_metas=metas, spec=cfg.spec, **cfg.preprocess)
            valuation, held_out = adv.split(cfg.split, seed=cfg.seed) if cfg.split > 0 else (adv, None)
        else:
            from onnxshap.attacks import DEFAULT_EPS, DEFAULT_MAX_QUERIES
            from onnxshap.attacks.examples import adversarial_dataset

            kw = {
                "eps": cfg.eps or DEFAULT_EPS,
                "max_queries": cfg.queries or DEFAULT_MAX_QUERIES,
                "seed": cfg.seed,
                "cache_dir": folder.path / "adversarial",
                "output": cfg.output,
            }
            valuation, _ = adversarial_dataset(inst, valuation, **kw)
            if held_out is not None:
                held_out, _ = adversarial_dataset(inst, held_out, **kw)
    game = OnnxGame(
        inst,
        valuation.inputs,
        valuation.labels,
        valuation.groups,
        metric=cfg.metric,
        output=cfg.output,
        fast=cfg.fast_path,
        stack=cfg.stack,
    )
    check = (
        game.with_data(held_out.inputs, held_out.labels, held_out.groups) if held_out is not None else game
    )
    return game, check, valuation, held_out


def config_from_run(run: dict[str, Any]) -> AuditConfig:
    """The AuditConfig a finished run was made with (from run.json's "config")."""
    saved = dict(run.get("config", {}))
    for key in ("model", "data", "out", "spec", "adversarial_data"):
        if saved.get(key) is not None:
            saved[key] = Path(saved[key])
    known = set(AuditConfig.__dataclass_fields__)
    return AuditConfig(**{k: v for k, v in saved.items() if k in known})


def replay_games(cfg: AuditConfig, folder: RunFolder, model: Path | None = None, provider: str | None = None):
    """(inst, game, held-out game) rebuilt from a run's config, e.g. to check a repair on the held-out split."""
    from onnxshap.instrumented import instrument

    inst = instrument(
        model or cfg.model,
        units=cfg.units,
        placement=cfg.placement,
        provider=provider or cfg.provider,
        exclude=cfg.exclude,
        provider_options=cfg.provider_options if (provider or cfg.provider) != "cpu" else None,
    )
    data, _ = _load(cfg, inst)
    game, check, _, _ = _games(cfg, inst, data, folder)
    return inst, game, check


def _curves(cfg: AuditConfig, inst, game, check, valuation, result) -> dict[str, Any]:
    from onnxshap.estimators import estimate
    from onnxshap.graph.weights import weight_norms
    from onnxshap.runtime.activations import mean_activations

    steps = removal_steps(inst.n_units, cfg.top_k)
    scores = result.scores
    rankings: dict[str, np.ndarray] = {
        "shapley": np.argsort(-scores, kind="stable"),
        "negative": np.argsort(scores, kind="stable"),
    }
    if cfg.baselines:
        loo = estimate(game, method="loo", seed=cfg.seed, progress=False)
        rankings["loo"] = np.argsort(-loo.scores, kind="stable")
        activation = np.nan_to_num(mean_activations(inst, valuation.inputs), nan=-np.inf)
        rankings["activation"] = np.argsort(-activation, kind="stable")
        weights = np.nan_to_num(weight_norms(inst.source, inst.units), nan=-np.inf)
        rankings["weight"] = np.argsort(-weights, kind="stable")
    curves = {name: removal_curve(check, ranking, steps) for name, ranking in rankings.items()}
    if cfg.baselines:
        curves["random"] = random_curve(check, steps, cfg.seed)
    return {
        "steps": steps,
        "data": "held-out split" if check is not game else "valuation data (no held-out split)",
        "curves": {name: values.tolist() for name, values in curves.items()},
        "auc": {name: area(steps, values) for name, values in curves.items()},
        "rankings": {name: ranking[: max(steps)].tolist() for name, ranking in rankings.items()},
    }


def _check_backend(cfg: AuditConfig) -> None:
    """Refuse a bad backend before anything is written (unknown name, Ray missing, non-sampling method,
    nothing answering at --address)."""
    if cfg.backend == "local" and cfg.address is None and cfg.workers is None:
        return
    from onnxshap.distributed import check_backend, check_reachable, require_ray
    from onnxshap.estimators import ESTIMATORS, ParameterError
    from onnxshap.estimators.permutation import SamplingEstimator

    check_backend(cfg.backend, cfg.address, cfg.workers)
    cls = ESTIMATORS.get(cfg.estimator)
    if cls is not None and not issubclass(cls, SamplingEstimator):
        raise ParameterError(
            f"--backend {cfg.backend} runs the sampling estimators (tmab, truncated, permutation), "
            f"not {cfg.estimator}"
        )
    if cfg.backend == "ray":
        require_ray()
        check_reachable(cfg.address)


def run_audit(cfg: AuditConfig) -> RunFolder:
    """Run (or resume) an audit into cfg.out and return the run folder."""
    from onnxshap import __version__
    from onnxshap.estimators import estimate
    from onnxshap.instrumented import instrument

    _check_backend(cfg)
    folder = RunFolder(cfg.out)
    folder.prepare(cfg.resume)
    started = time.time()
    inst = instrument(
        cfg.model,
        units=cfg.units,
        placement=cfg.placement,
        provider=cfg.provider,
        exclude=cfg.exclude,
        provider_options=cfg.provider_options,
    )
    data, data_path = _load(cfg, inst)
    game, check, valuation, held_out = _games(cfg, inst, data, folder)
    top_k = min(cfg.top_k, inst.n_units - 1) if cfg.top_k else None
    max_evals = cfg.max_evals
    if cfg.estimator == "tmab" and max_evals is None and cfg.max_seconds is None:
        max_evals = DEFAULT_EVALS_PER_UNIT * inst.n_units  # tmab alone has no natural end on near-ties
    run_info = {
        "status": "running",
        "model": str(cfg.model),
        "model_absolute": str(Path(cfg.model).resolve()),
        "model_sha256": inst.units.model_sha256,
        "metric": cfg.metric,
        "metric_description": game.metric.describe(),
        "data": str(data_path),
        "data_absolute": str(Path(data_path).resolve()),
        "data_fingerprint": data.fingerprint(),
        "valuation_items": valuation.__len__(),
        "held_out_items": 0 if held_out is None else len(held_out),
        "estimator": cfg.estimator,
        "seed": cfg.seed,
        "provider": inst.provider,
        "backend": cfg.backend,
        "n_units": inst.n_units,
        "onnxshap_version": __version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
    }
    folder.write_json(folder.run_json, run_info)
    result = estimate(
        game,
        method=cfg.estimator,
        top_k=top_k,
        seed=cfg.seed,
        max_evals=max_evals,
        max_seconds=cfg.max_seconds,
        checkpoint_dir=folder.checkpoint_dir,
        checkpoint_every_seconds=float(os.environ.get("ONNXSHAP_CHECKPOINT_SECONDS", 30)),
        resume=cfg.resume,
        progress=cfg.progress,
        backend=cfg.backend,
        address=cfg.address,
        workers=cfg.workers,
        **_estimator_params(cfg),
    )
    folder.write_results(result, inst.units)
    ids = inst.units.unit_ids()
    curves = _curves(cfg, inst, game, check, valuation, result)
    folder.write_json(folder.curves_json, curves)
    top = result.top_k if result.top_k is not None else result.ranking()[: top_k or 0]
    run_info.update(
        {
            "backend": result.metadata.get("backend", "local"),
            "workers": result.metadata.get("workers", 1),
            "status": "finished",
            "v_all": game.v_all,
            "v_empty": game.v_empty,
            "v_all_held_out": check.v_all,
            "parameters": {
                **result.metadata.get("params", {}),
                "max_evals": max_evals,
                "max_seconds": cfg.max_seconds,
                "top_k": top_k,
            },
            "estimator_metadata": result.metadata,
            "evaluations": result.evaluations,
            "fast_path": asdict(game.fast_path().describe()) if game.fast else None,
            "wall_seconds": result.metadata.get("wall_seconds"),
            "audit_seconds": time.time() - started,
            "top_k": [ids[i] for i in top],
            "guarantee": result.metadata.get("guarantee"),
            "decisions": result.metadata.get("decisions"),  # None: the estimator has no top-k rule
            "certain_in_top_k": result.metadata.get("certain_in_top_k"),
            "curves": curves["auc"],
        }
    )
    folder.write_json(folder.run_json, run_info)
    return folder
