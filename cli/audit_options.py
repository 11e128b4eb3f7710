"""Options shared by `run` and `check`: estimator, data, metric, preprocessing."""

from __future__ import annotations

from pathlib import Path

import click

from .graph_commands import exclude_option, placement_option, units_option

ESTIMATORS = ("tmab", "truncated", "permutation", "exact", "loo")


def audit_options(fn):
    """Decorate a command with every option AuditConfig understands."""
    options = [
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
            "per-class | mean-output | output-map:HxW | ctc | ctc-chars | custom:MODULE:FUNCTION",
        ),
        click.option("--estimator", type=click.Choice(ESTIMATORS), default="tmab", show_default=True),
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
        click.option("--max-seconds", type=float, default=None, help="Budget in wall-clock seconds."),
        click.option(
            "--delta",
            type=float,
            default=None,
            help="Confidence level 1-delta of the intervals, delta in (0, 1).",
        ),
        click.option(
            "--bound",
            type=click.Choice(
                ["betting", "stitched", "plugin-bernstein", "bernstein", "hoeffding", "student-t"]
            ),
            default=None,
            help="tmab's intervals: betting (default), stitched or plugin-bernstein confidence sequences "
            "(simultaneous over units and rounds at --delta); bernstein or hoeffding (the original's per-unit "
            "rule, no joint guarantee); student-t (CLT heuristic, no guarantee: it can stop on a wrong top-k).",
        ),
        click.option(
            "--images",
            type=int,
            default=128,
            show_default=True,
            help="Data items that value each permutation, drawn from the valuation split.",
        ),
        click.option(
            "--split",
            type=float,
            default=0.5,
            show_default=True,
            help="Fraction of the data held out for checking (removal curves, repairs), in [0, 1).",
        ),
        units_option,
        placement_option,
        exclude_option,
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
            "--backend",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help='Where permutations are walked: this process, or Ray actors (pip install "onnxshap[ray]").',
        ),
        click.option(
            "--address",
            default=None,
            help="ray: cluster to join, auto | HOST:PORT (default: a new local Ray instance).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="ray: actors (default: one per GPU, else one per node).",
        ),
        click.option(
            "--baselines/--no-baselines",
            default=True,
            show_default=True,
            help="Also rank by leave-one-out, activation, weight norm and random for the removal curves.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def config_from_options(model: Path, out: Path, resume: bool, **opts):
    """AuditConfig from the click options."""
    from onnxshap.audit import AuditConfig
    from onnxshap.audit.validation import validate_config
    from onnxshap.runtime.providers import parse_provider_options

    preprocess = {k: opts.pop(k) for k in ("size", "resize", "scale", "mean", "std", "channels", "layout")}
    cfg = AuditConfig(
        model=model,
        out=out,
        resume=resume,
        data=opts["data"],
        metric=opts["metric"],
        estimator=opts["estimator"],
        top_k=opts["top_k"],
        seed=opts["seed"],
        max_evals=opts["max_evals"],
        max_seconds=opts["max_seconds"],
        delta=opts["delta"],
        images=opts["images"],
        split=opts["split"],
        units=opts["units"],
        placement=opts["placement"],
        exclude=opts["exclude"],
        provider=opts["provider"],
        provider_options=parse_provider_options(list(opts["provider_options"])),
        fast_path=opts["fast_path"],
        stack=opts["stack"],
        output=opts["output_name"],
        preprocess={k: v for k, v in preprocess.items() if v is not None},
        spec=opts["spec"],
        eps=opts["eps"],
        queries=opts["queries"],
        adversarial_data=opts["adversarial_data"],
        baselines=opts["baselines"],
        backend=opts["backend"],
        address=opts["address"],
        workers=opts["workers"],
        extra={"bound": opts["bound"]} if opts["bound"] else {},
    )
    return validate_config(cfg)  # bad values are one line each, before anything is loaded
