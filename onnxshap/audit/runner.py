"""`run_audit`: instrument, load data, value the game, write the run folder, measure removal curves."""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxshap.audit.config import AuditConfig
from onnxshap.audit.curves import area, random_curve, removal_curve, removal_steps
from onnxshap.audit.plan import AuditPlan
from onnxshap.audit.runfolder import RunFolder, RunFolderError
from onnxshap.audit.validation import resolve_top_k, validate_config
from onnxshap.deadline import DeadlineReached, deadline
from onnxshap.errors import DataError
from onnxshap.graph.units import REMOVALS

if TYPE_CHECKING:
    from onnxshap.runtime.interface import MaskedModel

REMOVAL_DESCRIPTIONS = {
    "zero": "a removed unit outputs 0 at its mask",
    "mean": "a removed unit outputs its mean activation over the valuation split (per channel) at its mask",
}
ADVERSARIAL_METRICS = ("adversarial", "robustness")


def default_data(model: Path) -> Path:
    """The data shipped with a fixture model (models/fixtures.json), for runs without --data."""
    import json

    manifest = model.resolve().parent / "fixtures.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text()):
            if entry.get("file") == model.name and entry.get("data"):
                return manifest.parent / entry["data"]
    raise DataError(f"--data is required for {model.name} (no shipped data found for it)")


def _load(cfg: AuditConfig, inst: MaskedModel):
    from onnxshap.data import load_data

    metas = inst.input_metas()
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


def _games(cfg: AuditConfig, inst: MaskedModel, data, folder: RunFolder, means: np.ndarray | None = None):
    """(unit game, held-out unit game, valuation split, held-out split, inst) for a run's config.

    With ``--removal mean`` the model is re-instrumented with each unit's mean activation on the valuation
    split (``means`` when given: a finished run's record), and that model is the returned ``inst``."""
    from onnxshap.audit.data_checks import check_audit_data, output_item_shape
    from onnxshap.games.onnx_game import OnnxGame
    from onnxshap.metrics import get_metric

    metric = get_metric(cfg.metric)
    shape = output_item_shape(inst, data, cfg.output)
    check_audit_data(metric, data, shape)  # every label and group, before the split, attack or estimate
    valuation, held_out = data.split(cfg.split, seed=cfg.seed) if cfg.split > 0 else (data, None)
    if cfg.metric in ADVERSARIAL_METRICS:
        if cfg.adversarial_data is not None:
            from onnxshap.data import load_data

            metas = inst.input_metas()
            adv = load_data(cfg.adversarial_data, input_metas=metas, spec=cfg.spec, **cfg.preprocess)
            check_audit_data(metric, adv, shape)
            valuation, held_out = adv.split(cfg.split, seed=cfg.seed) if cfg.split > 0 else (adv, None)
        else:
            from onnxshap.attacks import DEFAULT_EPS, DEFAULT_MAX_QUERIES
            from onnxshap.attacks.examples import adversarial_dataset

            kw = {
                "eps": DEFAULT_EPS if cfg.eps is None else cfg.eps,
                "max_queries": DEFAULT_MAX_QUERIES if cfg.queries is None else cfg.queries,
                "seed": cfg.seed,
                "cache_dir": folder.path / "adversarial",
                "output": cfg.output,
            }
            valuation, _ = adversarial_dataset(inst, valuation, **kw)
            if held_out is not None:
                held_out, _ = adversarial_dataset(inst, held_out, **kw)
    if cfg.removal == "mean":
        inst = inst.with_means(means if means is not None else unit_means(inst, valuation.inputs))
    game = OnnxGame(
        inst,
        valuation.inputs,
        valuation.labels,
        valuation.groups,
        metric=metric,
        output=cfg.output,
        fast=cfg.fast_path,
        stack=cfg.stack,
    )
    check = game
    if held_out is not None:
        try:
            check = game.with_data(held_out.inputs, held_out.labels, held_out.groups)
        except DataError as exc:
            raise DataError(f"held-out split: {exc}") from None
    return game, check, valuation, held_out, inst


def unit_means(inst: MaskedModel, inputs) -> np.ndarray:
    """Each unit's mean activation on ``inputs`` (what ``--removal mean`` puts in place of a removed unit)."""
    from onnxshap.errors import ModelError
    from onnxshap.runtime.activations import channel_means

    means = channel_means(inst, inputs)
    unread = np.flatnonzero(~np.isfinite(means))
    if unread.size:
        layer = inst.units.layers[int(inst.units.unit_layers()[unread[0]])]
        raise ModelError(
            f"--removal mean: the mean activation of {layer.layer} cannot be measured ({unread.size} units "
            "inside If/Loop/Scan bodies or non-finite activations); use --exclude or --removal zero"
        )
    return means


def check_players(cfg: AuditConfig) -> None:
    """Refuse bad --players / --removal / --lesion options before anything is written."""
    from onnxshap.players import check_spec

    check_spec(cfg.players)
    if cfg.removal not in REMOVALS:
        raise DataError(f"unknown --removal {cfg.removal!r}; choose zero or mean")
    if (cfg.lesion_run is None) != (cfg.lesion_top is None):
        raise DataError("--lesion-run RUN and --lesion-top K go together")
    if cfg.lesion_top is not None and cfg.lesion_top < 1:
        raise DataError("--lesion-top needs K >= 1")
    if cfg.lesion_run is not None:
        lesion_items(cfg)


def lesion_items(cfg: AuditConfig) -> list[str]:
    """The --lesion names plus the top --lesion-top players of --lesion-run (read from its shapley.csv)."""
    items = list(cfg.lesion)
    if cfg.lesion_run is not None:
        folder = RunFolder(cfg.lesion_run)
        if not folder.finished:
            raise DataError(f"--lesion-run: {cfg.lesion_run} holds no finished run")
        rows = folder.read_csv()
        items += [row["unit"] for row in rows[: cfg.lesion_top]]
    return list(dict.fromkeys(items))


def players_for(cfg: AuditConfig, table):
    """The player table of a run: the --players spec over the unit table, with the lesions applied."""
    from onnxshap.players import build_players

    players = build_players(cfg.players, table)
    items = lesion_items(cfg)
    return players.lesioned_by(items, table) if items else players


def _recorded_means(inst: MaskedModel) -> np.ndarray:
    """The per-unit means a mean-removal model was built with (read back from its initializers)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in inst.model.graph.initializer}
    out = np.zeros(inst.n_units)
    for layer in inst.units.layers:
        name = f"{layer.mask_input}__mean"
        if name in inits:
            out[layer.offset : layer.offset + layer.channels] = numpy_helper.to_array(inits[name]).reshape(-1)
    return out


UNMEASURED = "unmeasured"  # config_from_run(metric=UNMEASURED): the caller builds no game from it


def is_custom(metric: str) -> bool:
    """Whether a metric name runs the user's code (`custom:module:function`, `custom:file.py:function`)."""
    return str(metric).strip().startswith("custom:")


def config_from_run(run: dict[str, Any], metric: str | None = None) -> AuditConfig:
    """The AuditConfig a finished run was made with (from run.json's "config"), with `metric` instead of
    the run's when given. Reading a run folder never runs code: a `custom:` metric found there is refused
    unless `metric` replaces it (the caller's own choice, e.g. from the command line)."""
    saved = dict(run.get("config") or {})
    saved.setdefault("model", run.get("model"))
    for key in ("model", "data", "out", "spec", "adversarial_data", "lesion_run"):
        if saved.get(key) is not None:
            saved[key] = Path(saved[key])
    known = set(AuditConfig.__dataclass_fields__)
    cfg = AuditConfig(**{k: v for k, v in saved.items() if k in known})
    if metric is not None:
        cfg.metric = metric
    elif is_custom(cfg.metric) or is_custom(run.get("metric", "")):
        raise RunFolderError(
            f"the run's metric {cfg.metric!r} is code named by the run folder, which onnxshap never runs; "
            "pass the metric yourself (e.g. prune --metric custom:...)"
        )
    return cfg


@dataclass
class Reopened:
    """A run's model, instrumented as the run did, and (on first use) its data: see `reopen`."""

    cfg: AuditConfig
    folder: RunFolder
    inst: MaskedModel

    @functools.cached_property
    def _loaded(self):
        return _load(self.cfg, self.inst)

    @property
    def data(self):
        """The run's whole data set (before the valuation / held-out split)."""
        return self._loaded[0]

    @property
    def data_path(self) -> Path:
        return Path(self._loaded[1])

    def games(self):
        """(inst, game, held-out game) as the run built them, e.g. to check a repair on the held-out split.

        Unit games (over the units, not the players; see ``RunFolder.load_players``). With mean removal the
        means the run recorded (means.npy) are used, not measured again, and ``inst`` is the model with them."""
        means = self.folder.load_means() if self.cfg.removal == "mean" else None
        game, check, _, _, inst = _games(self.cfg, self.inst, self.data, self.folder, means)
        return inst, game, check


def reopen(
    folder: RunFolder,
    cfg: AuditConfig | None = None,
    metric: str | None = None,
    model: Path | None = None,
    provider: str | None = None,
) -> Reopened:
    """The one way to open a run's model and data again (prune, interactions, check, the report's pictures).

    ``cfg``: the run's config, by default read from its run.json by `config_from_run` (``metric`` replacing
    the run's; a custom metric named only by the run folder is refused, never imported); a caller passes
    its own when it holds the options the run was made with (check) or has re-located the files (report).
    ``model`` / ``provider``: where the model file is now, and the provider to run it on."""
    from onnxshap.instrumented import instrument

    cfg = cfg if cfg is not None else config_from_run(folder.read_run(), metric)
    provider = provider or cfg.provider
    inst = instrument(
        model or cfg.model,
        units=cfg.units,
        placement=cfg.placement,
        provider=provider,
        exclude=cfg.exclude,
        provider_options=cfg.provider_options if provider != "cpu" else None,
    )
    return Reopened(cfg, folder, inst)


def replay_games(cfg: AuditConfig, folder: RunFolder, model: Path | None = None, provider: str | None = None):
    """(inst, game, held-out game) rebuilt from a run's config: ``reopen(folder, cfg, ...).games()``."""
    return reopen(folder, cfg, model=model, provider=provider).games()


def _per_player(players, unit_values: np.ndarray) -> np.ndarray:
    """A per-unit baseline score summed over each player's members (NaN members count as unknown)."""
    return np.array([np.sum(unit_values[m]) for m in players.members])


def _curves(
    cfg: AuditConfig, inst: MaskedModel, game, check, valuation, result, players, plan: AuditPlan
) -> dict[str, Any]:
    """Removal curves over the players (``game`` and ``check`` are the player games), each baseline and
    each curve a phase of ``plan``: what does not fit in the budget is skipped and named."""
    from onnxshap.games.loo import loo_missing, loo_values, remember_loo
    from onnxshap.graph.weights import weight_norms
    from onnxshap.results import scalar_summary
    from onnxshap.runtime.activations import mean_activations

    if cfg.estimator == "loo":
        remember_loo(game, result.values)  # a loo run's own values are its leave-one-out baseline

    steps = removal_steps(players.n_players, cfg.top_k)
    per_eval = _seconds_per_evaluation(result)
    curve_cost = len(steps) * per_eval
    scores = result.scores
    rankings: dict[str, np.ndarray] = {}
    curves: dict[str, np.ndarray] = {}

    def add(name: str, ranking: np.ndarray | None) -> None:
        if ranking is None:
            return
        rankings[name] = ranking
        values = plan.run(f"{name} curve", lambda: removal_curve(check, ranking, steps), curve_cost)
        if values is not None:
            curves[name] = values

    def activation_ranking() -> np.ndarray:
        activation = _per_player(players, mean_activations(inst, valuation.inputs))
        return np.argsort(-np.nan_to_num(activation, nan=-np.inf), kind="stable")

    def weight_ranking() -> np.ndarray:
        weights = _per_player(players, weight_norms(inst.source, inst.units))
        return np.argsort(-np.nan_to_num(weights, nan=-np.inf), kind="stable")

    def loo_ranking() -> np.ndarray:
        return np.argsort(-scalar_summary(loo_values(game)), kind="stable")  # computed once per game

    # the run's own rankings first, then the baselines cheapest first: what a short budget keeps is the
    # Shapley curve, and leave-one-out (one evaluation per player) never starves the others
    add("shapley", np.argsort(-scores, kind="stable"))
    add("negative", np.argsort(scores, kind="stable"))
    if cfg.baselines:
        add("weight", plan.run("weight baseline", weight_ranking))
        add("activation", plan.run("activation baseline", activation_ranking, 2 * per_eval))
        values = plan.run("random curve", lambda: random_curve(check, steps, cfg.seed), 5 * curve_cost)
        if values is not None:
            curves["random"] = values
        add("loo", plan.run("loo baseline", loo_ranking, loo_missing(game) * per_eval + curve_cost))
    return {
        "steps": steps,
        "data": "held-out split" if check is not game else "valuation data (no held-out split)",
        "curves": {name: values.tolist() for name, values in curves.items()},
        "auc": {name: area(steps, values) for name, values in curves.items()},
        "rankings": {name: ranking[: max(steps)].tolist() for name, ranking in rankings.items()},
        "skipped": dict(plan.skipped),
    }


def _seconds_per_evaluation(result) -> float:
    """Seconds per evaluation measured by the estimation (0 when it made none), counting the evaluations
    of a step the deadline cut short (their time is in the wall seconds too)."""
    evals = (result.evaluations or 0) + int(result.metadata.get("discarded_evaluations", 0))
    return float(result.metadata.get("wall_seconds") or 0.0) / evals if evals else 0.0


def _max_evals(cfg: AuditConfig, n_players: int) -> int | None:
    """The run's max_evals: the configured one, else (no budget at all) ``evals_per_player`` per player,
    else the estimator's own default (``Estimator.default_budget``)."""
    from onnxshap.estimators import method_class

    if cfg.max_evals is not None or cfg.max_seconds is not None:
        return cfg.max_evals
    if cfg.evals_per_player is not None:
        return cfg.evals_per_player * n_players
    return method_class(cfg.estimator).default_budget(n_players)


def _check_backend(cfg: AuditConfig) -> None:
    """Refuse a bad backend before anything is written (unknown name, Ray missing, non-sampling method,
    nothing answering at --address)."""
    if cfg.backend == "local" and cfg.address is None and cfg.workers is None:
        return
    from onnxshap.backends import check_backend_for
    from onnxshap.distributed import check_reachable, require_ray

    check_backend_for(cfg.estimator, cfg.backend, cfg.address, cfg.workers)
    if cfg.backend == "ray":
        require_ray()
        check_reachable(cfg.address)


def run_audit(cfg: AuditConfig) -> RunFolder:
    """Run (or resume) an audit into cfg.out and return the run folder.

    The folder's writer lock is held throughout (a second writer is refused, see RunFolder.locked). Once
    run.json is written, a run that stops early records it there: status "interrupted" (KeyboardInterrupt,
    SIGTERM) or "failed" with the error; its checkpoint, if any, can be resumed.
    """
    plan = AuditPlan(cfg.max_seconds, cfg.baselines)
    validate_config(cfg)
    _check_backend(cfg)
    check_players(cfg)
    folder = RunFolder(cfg.out)
    # the deadline covers the whole command, not only the estimation
    with deadline(cfg.max_seconds), folder.locked(create=True):
        folder.prepare(cfg.resume)
        _audit(cfg, folder, plan)
    return folder


def game_identity(cfg: AuditConfig, inst: MaskedModel, data, valuation) -> dict[str, Any]:
    """What the game is made of, beyond what the estimator sees: must match for a checkpoint to resume.
    The model's sha256 (and its external data files'), the data's and the valuation items' fingerprints."""
    from onnxshap.fileio import sha256_of

    source = inst.source
    identity: dict[str, Any] = {
        "model_sha256": inst.units.model_sha256,
        "data_fingerprint": data.fingerprint(),
        "valuation_fingerprint": valuation.fingerprint(),
        "metric": cfg.metric,
        "output": cfg.output,
    }
    if source.has_external_data:
        identity["model_data_sha256"] = {f: sha256_of(source.base_dir / f) for f in source.external_files}
    return identity


def _audit(cfg: AuditConfig, folder: RunFolder, plan: AuditPlan) -> None:
    from onnxshap import __version__
    from onnxshap.instrumented import instrument

    started = time.time()
    inst = instrument(
        cfg.model,
        units=cfg.units,
        placement=cfg.placement,
        provider=cfg.provider,
        exclude=cfg.exclude,
        provider_options=cfg.provider_options,
    )
    players = players_for(cfg, inst.units)
    data, data_path = _load(cfg, inst)
    means = folder.load_means() if cfg.resume and cfg.removal == "mean" else None
    unit_game, unit_check, valuation, held_out, inst = _games(cfg, inst, data, folder, means)
    identity = game_identity(cfg, inst, data, valuation)
    if cfg.removal == "mean" and means is None:
        folder.write_means(_recorded_means(inst))
    game, check = players.wrap(unit_game), players.wrap(unit_check)
    n_players = players.n_players
    if n_players < 2 and cfg.estimator != "exact":
        raise DataError(
            f"only {n_players} player: nothing to rank (use --estimator exact or other --players)"
        )
    resolve_top_k(cfg.top_k, n_players)  # refused here, before any work
    unit_game.check_draw_size(_estimator_params(cfg).get("images"))  # before any estimate
    run_info = {
        "status": "running",
        "model": str(cfg.model),
        "model_absolute": str(Path(cfg.model).resolve()),
        "model_sha256": inst.units.model_sha256,
        "metric": cfg.metric,
        "metric_description": unit_game.metric.describe(),
        "element_names": unit_game.metric.element_names(),
        "data": str(data_path),
        "data_absolute": str(Path(data_path).resolve()),
        "data_fingerprint": identity["data_fingerprint"],
        "valuation_items": valuation.__len__(),
        "held_out_items": 0 if held_out is None else len(held_out),
        "estimator": cfg.estimator,
        "seed": cfg.seed,
        "provider": inst.provider,
        "backend": cfg.backend,
        "n_units": inst.n_units,
        "players": players.spec,
        "n_players": n_players,
        "removal": cfg.removal,
        "removal_description": REMOVAL_DESCRIPTIONS[cfg.removal],
        "lesion": players.lesion,
        "lesioned_units": int(players.lesioned.size),
        "onnxshap_version": __version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
    }
    if "model_data_sha256" in identity:
        run_info["model_data_sha256"] = identity["model_data_sha256"]
    folder.write_json(folder.run_json, run_info)
    plan.seconds["setup"] = round(plan.elapsed(), 3)
    try:
        _estimate_and_record(
            cfg, folder, inst, players, unit_game, game, check, valuation, run_info, identity, started, plan
        )
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            folder.mark("interrupted")
        raise
    except Exception as exc:
        with contextlib.suppress(Exception):
            folder.mark("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise


def _estimate_and_record(
    cfg, folder, inst, players, unit_game, game, check, valuation, run_info, identity, started, plan
) -> None:
    from onnxshap.backends import estimate

    top_k = resolve_top_k(cfg.top_k, players.n_players)
    max_evals = _max_evals(cfg, players.n_players)
    estimation_seconds = plan.estimation_budget() if cfg.max_seconds is not None else None
    if estimation_seconds is not None and estimation_seconds <= 0:
        raise DeadlineReached(
            f"--max-seconds {cfg.max_seconds:g} is used up by loading the model and data "
            f"({plan.elapsed():.1f} s): give the command more time"
        )
    with plan.phase("estimation"):
        result = estimate(
            game,
            method=cfg.estimator,
            top_k=top_k,
            seed=cfg.seed,
            max_evals=max_evals,
            max_seconds=estimation_seconds,
            checkpoint_dir=folder.checkpoint_dir,
            checkpoint_every_seconds=cfg.checkpoint_seconds,
            resume=cfg.resume,
            progress=cfg.progress,
            backend=cfg.backend,
            address=cfg.address,
            workers=cfg.workers,
            fingerprint_extra=identity,
            **_estimator_params(cfg),
        )
    folder.write_results(result, inst.units, players)
    ids = players.names
    curves = _curves(cfg, inst, game, check, valuation, result, players, plan)
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
            "fast_path": asdict(unit_game.fast_path().describe()) if unit_game.fast else None,
            "estimation_seconds": result.metadata.get("wall_seconds"),
            "wall_seconds": round(plan.elapsed(), 3),  # the whole command
            "plan": plan.as_json(),
            "audit_seconds": time.time() - started,
            "top_k": [ids[i] for i in top],
            "guarantee": result.metadata.get("guarantee"),
            "decisions": result.metadata.get("decisions"),  # None: the estimator has no top-k rule
            "certain_in_top_k": result.metadata.get("certain_in_top_k"),
            "curves": curves["auc"],
        }
    )
    folder.write_json(folder.run_json, run_info)
