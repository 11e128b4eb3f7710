"""Options of `run` and `check`, in groups: each group owns its options, fills its part of an AuditConfig
and has its own section in --help. Choices come from the library, never from copies here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from onnxshap.estimators.api import ESTIMATORS
from onnxshap.estimators.base import BOUNDS
from onnxshap.graph.units import REMOVALS

from .graph_commands import exclude_option, placement_option, units_option

if TYPE_CHECKING:
    from onnxshap.audit import AuditConfig

DEFAULT_CHECKPOINT_SECONDS = 30.0


@dataclass(frozen=True)
class OptionGroup:
    """A titled set of click options and how their values go into an AuditConfig."""

    title: str
    options: tuple[Callable[[Any], Any], ...]
    apply: Callable[[AuditConfig, dict[str, Any]], None]

    def decorate(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add this group's options to a click command function."""
        for option in reversed(self.options):
            fn = option(fn)
        return fn

    def param_names(self) -> set[str]:
        """The click parameter names of the options (what ``apply`` reads)."""
        return {p.name for p in self.decorate(lambda **_: None).__click_params__}


def _estimation(cfg: AuditConfig, o: dict[str, Any]) -> None:
    cfg.estimator, cfg.top_k, cfg.seed = o["estimator"], o["top_k"], o["seed"]
    cfg.max_evals, cfg.max_seconds, cfg.delta = o["max_evals"], o["max_seconds"], o["delta"]
    cfg.images, cfg.checkpoint_seconds = o["images"], o["checkpoint_seconds"]
    if o["bound"]:
        cfg.extra["bound"] = o["bound"]
    if o["loo_control"]:
        cfg.extra["loo_control"] = True
    if o["focus"]:
        cfg.extra["focus"] = o["focus"]


ESTIMATION = OptionGroup(
    "Estimation",
    (
        click.option("--estimator", type=click.Choice(list(ESTIMATORS)), default="tmab", show_default=True),
        click.option(
            "--top-k",
            type=int,
            default=None,
            help="How many top units to identify (default 30, at most the number of units - 1).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--max-evals",
            type=int,
            default=None,
            help="Budget in model evaluations (tmab default: 100 per unit).",
        ),
        click.option(
            "--max-seconds",
            type=float,
            default=None,
            help="Deadline for the whole command, in wall-clock seconds (estimation, baselines, curves).",
        ),
        click.option(
            "--delta",
            type=float,
            default=None,
            help="Confidence level 1-delta of the intervals, delta in (0, 1).",
        ),
        click.option(
            "--bound",
            type=click.Choice(BOUNDS),
            default=None,
            help="tmab's intervals: betting (default), stitched or plugin-bernstein confidence sequences "
            "(simultaneous over units and rounds at --delta); bernstein or hoeffding (the original's per-unit "
            "rule, no joint guarantee); student-t (CLT heuristic, no guarantee: it can stop on a wrong top-k).",
        ),
        click.option(
            "--loo-control",
            is_flag=True,
            default=False,
            help="tmab: value every unit alone first (one evaluation each) and use leave-one-out as a control "
            "variate for the values and the ranking (a heuristic with a small bias; intervals and certain "
            "decisions are unchanged). Helps when walks are few for many units.",
        ),
        click.option(
            "--focus",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="tmab: value every unit alone first, then spend half the evaluations on stratified draws "
            "over the first n/8 removal positions for this many contenders (the top by leave-one-out and by "
            "the estimate): precise values where networks that collapse early hold their value (a heuristic "
            "choice of contenders; intervals and certain decisions are unchanged). 0: off.",
        ),
        click.option(
            "--images",
            type=int,
            default=128,
            show_default=True,
            help="Data items that value each permutation, drawn from the valuation split.",
        ),
        click.option(
            "--checkpoint-seconds",
            type=float,
            default=DEFAULT_CHECKPOINT_SECONDS,
            show_default=True,
            help="Write the checkpoint at least this often, also inside a round of permutations: a kill "
            "loses at most this much work (--resume continues).",
        ),
    ),
    _estimation,
)


def _data(cfg: AuditConfig, o: dict[str, Any]) -> None:
    cfg.data, cfg.metric, cfg.split, cfg.output, cfg.spec = (
        o["data"], o["metric"], o["split"], o["output_name"], o["spec"],
    )  # fmt: skip
    keys = ("size", "resize", "scale", "mean", "std", "channels", "layout")
    cfg.preprocess = {k: o[k] for k in keys if o[k] is not None}


DATA = OptionGroup(
    "Data and metric",
    (
        click.option(
            "--data",
            type=click.Path(path_type=Path),
            help=".npz (x, y, group) or an image folder with labels.csv; default: a fixture's shipped data.",
        ),
        click.option(
            "--metric",
            default="accuracy",
            show_default=True,
            help="accuracy | loss | logit | class:C | fairness | fairness:GROUP | adversarial | robustness | "
            "per-class | mean-output | output-map:HxW | ctc | ctc-chars | custom:MODULE:FUNCTION or "
            "custom:FILE.py:FUNCTION (imports and runs that code)",
        ),
        click.option(
            "--split",
            type=float,
            default=0.5,
            show_default=True,
            help="Fraction of the data held out for checking (removal curves, repairs), in [0, 1).",
        ),
        click.option(
            "--output", "output_name", default=None, help="Model output the metric reads (default: first)."
        ),
        click.option("--size", default=None, help="Image folders: HxW to resize to."),
        click.option("--resize", type=click.Choice(["stretch", "pad", "crop"]), default=None),
        click.option(
            "--scale", type=float, default=None, help="Image folders: multiply pixels (default 1/255)."
        ),
        click.option("--mean", default=None, help="Image folders: per-channel mean, e.g. 0.485,0.456,0.406"),
        click.option("--std", default=None, help="Image folders: per-channel std."),
        click.option("--channels", type=click.Choice(["RGB", "BGR", "gray"]), default=None),
        click.option("--layout", type=click.Choice(["NCHW", "NHWC", "NHW"]), default=None),
        click.option(
            "--spec",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Preprocessing spec JSON (see onnxshap.data.PreprocessSpec).",
        ),
    ),
    _data,
)


def _players(cfg: AuditConfig, o: dict[str, Any]) -> None:
    cfg.units, cfg.placement, cfg.exclude = o["units"], o["placement"], o["exclude"]
    cfg.players, cfg.removal = o["players"], o["removal"]
    cfg.lesion = [u.strip() for u in (o["lesion"] or "").split(",") if u.strip()]
    cfg.lesion_run, cfg.lesion_top = o["lesion_run"], o["lesion_top"]


PLAYERS = OptionGroup(
    "Units and players",
    (
        units_option,
        placement_option,
        exclude_option,
        click.option(
            "--players",
            default="channels",
            show_default=True,
            help="Who plays: channels (each unit) | layers (each unit layer) | blocks:D (D channels of a "
            "layer, e.g. attention heads) | groups:FILE (JSON/CSV map unit -> group; unlisted units stay on).",
        ),
        click.option(
            "--removal",
            type=click.Choice(REMOVALS),
            default="zero",
            show_default=True,
            help="What a removed unit outputs: zero, or its mean activation over the valuation split.",
        ),
        click.option(
            "--lesion",
            default=None,
            metavar="NAME,...",
            help="Remove these for good and value the rest: player names (as in shapley.csv), unit ids "
            "(LAYER:C, LAYER:A-B) or layers.",
        ),
        click.option(
            "--lesion-run",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="A finished run folder: lesion its top --lesion-top players.",
        ),
        click.option("--lesion-top", type=int, default=None, help="How many top players of --lesion-run."),
    ),
    _players,
)


def _runtime(cfg: AuditConfig, o: dict[str, Any]) -> None:
    from onnxshap.runtime.providers import parse_provider_options

    cfg.provider, cfg.fast_path, cfg.stack = o["provider"], o["fast_path"], o["stack"]
    cfg.provider_options = parse_provider_options(list(o["provider_options"]))
    cfg.backend, cfg.address, cfg.workers = o["backend"], o["address"], o["workers"]


RUNTIME = OptionGroup(
    "Runtime and scale-out",
    (
        click.option("--provider", default="auto", show_default=True, help="auto | cpu | cuda"),
        click.option(
            "--provider-option",
            "provider_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="CUDA execution provider option (repeatable), e.g. enable_cuda_graph=1, "
            "cudnn_conv_algo_search=HEURISTIC; defaults in onnxshap.runtime.providers.CUDA_DEFAULTS.",
        ),
        click.option(
            "--fast-path/--no-fast-path",
            default=True,
            show_default=True,
            help="Run the layers before the first mask once per data batch, keep the batch bound, reduce "
            "the output in the graph (off: the whole instrumented model per evaluation).",
        ),
        click.option(
            "--stack",
            type=click.IntRange(min=1),
            default=None,
            help="Coalitions per ONNX Runtime run, stacked along the batch (default: sized automatically).",
        ),
        click.option(
            "--backend",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help='Where permutations are walked: this process, or Ray actors (pip install "onnxshap[ray]").',
        ),
        click.option(
            "--address",
            default=None,
            help="ray: cluster to join, auto | HOST:PORT (default: a new local Ray).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="ray: actors (default: one per GPU, else one per node).",
        ),
    ),
    _runtime,
)


def _attack_and_baselines(cfg: AuditConfig, o: dict[str, Any]) -> None:
    cfg.eps, cfg.queries, cfg.adversarial_data = o["eps"], o["queries"], o["adversarial_data"]
    cfg.baselines = o["baselines"]


ATTACK_AND_BASELINES = OptionGroup(
    "Attack and baselines",
    (
        click.option(
            "--eps",
            type=float,
            default=None,
            help="adversarial/robustness: L-inf radius of the built-in attack, > 0 (default 0.15).",
        ),
        click.option(
            "--queries",
            type=int,
            default=None,
            help="adversarial/robustness: query budget of the built-in attack (default 1000).",
        ),
        click.option(
            "--adversarial-data",
            type=click.Path(path_type=Path),
            default=None,
            help="adversarial: your own adversarial examples instead of the built-in attack.",
        ),
        click.option(
            "--baselines/--no-baselines",
            default=True,
            show_default=True,
            help="Also rank by leave-one-out, activation, weight norm and random for the removal curves.",
        ),
    ),
    _attack_and_baselines,
)

AUDIT_GROUPS = (DATA, ESTIMATION, PLAYERS, RUNTIME, ATTACK_AND_BASELINES)


class GroupedCommand(click.Command):
    """A command whose --help lists the options of each group under the group's title."""

    groups: tuple[OptionGroup, ...] = AUDIT_GROUPS

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        owned = {name: g.title for g in self.groups for name in g.param_names()}
        sections: dict[str, list[tuple[str, str]]] = {"Options": []}
        sections.update({g.title: [] for g in self.groups})
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections[owned.get(param.name or "", "Options")].append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def audit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command with every option group of an audit."""
    for group in reversed(AUDIT_GROUPS):
        fn = group.decorate(fn)
    return fn


def config_from_options(model: Path, out: Path, resume: bool, **opts: Any) -> AuditConfig:
    """A validated AuditConfig: each group fills in its own fields."""
    from onnxshap.audit import AuditConfig
    from onnxshap.audit.validation import validate_config

    cfg = AuditConfig(model=model, out=out, resume=resume)
    for group in AUDIT_GROUPS:
        group.apply(cfg, opts)
    return validate_config(cfg)  # bad values are one line each, before anything is loaded
