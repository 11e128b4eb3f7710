"""`onnxshap check`: a bounded audit with pass/fail policies for CI pipelines (exit 0 pass, 1 fail, 2 error)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .errors import friendly_errors
from .option_groups import GroupedCommand, audit_options, config_from_options

CHECK_EVALS_PER_UNIT = 30


INCONCLUSIVE_CHOICES = ("inconclusive", "pass", "fail")
INCONCLUSIVE_EXIT = {"inconclusive": 3, "pass": 0, "fail": 1}
POLICY_RESERVE_SECONDS = 2.0  # at least, of --max-seconds, for measuring the policies after the audit


@click.command(cls=GroupedCommand)
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML or JSON file with the bounds below (options override it).",
)
@click.option(
    "--max-drop",
    type=float,
    default=None,
    help="Fail when removing the top --drop-k units drops the held-out metric by more than this.",
)
@click.option("--drop-k", type=int, default=None, help="Units removed for --max-drop (default 10).")
@click.option("--max-gap", type=float, default=None, help="Fail when the held-out fairness gap exceeds this.")
@click.option("--min-value", type=float, default=None, help="Fail when the held-out metric is below this.")
@click.option(
    "--baseline-run",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder of a previous model version, for --min-overlap.",
)
@click.option(
    "--min-overlap",
    type=float,
    default=None,
    help="Fail when the top-k overlap with --baseline-run falls below this fraction.",
)
@click.option(
    "--inconclusive",
    "inconclusive_means",
    type=click.Choice(INCONCLUSIVE_CHOICES),
    default="inconclusive",
    show_default=True,
    help="What a gate the --max-seconds budget could not settle means: exit 3 (inconclusive), or pass (0) "
    "or fail (1).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the verdict as JSON to this file ('-': stdout): each policy's figure, bound and "
    "verdict, the budget used, the certainty of the top-k, the exit code.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the audit's run folder goes (default runs/check-MODEL-TIMESTAMP).",
)
@audit_options
@friendly_errors
def check(
    model: Path,
    policy_file: Path | None,
    max_drop,
    drop_k,
    max_gap,
    min_value,
    baseline_run,
    min_overlap,
    inconclusive_means: str,
    json_path: Path | None,
    out: Path | None,
    **opts,
) -> None:
    """Audit MODEL within a budget and apply the policies: exit 0 pass, 1 fail, 2 error, 3 inconclusive
    (the --max-seconds budget ran out before the policies could be measured; see --inconclusive)."""
    from onnxshap.audit import run_audit
    from onnxshap.audit.policy import Policy, evaluate
    from onnxshap.audit.runfolder import new_run_path
    from onnxshap.audit.runner import reopen
    from onnxshap.deadline import DeadlineReached, deadline
    from onnxshap.errors import DataError
    from onnxshap.interrupts import sigterm_raises

    policy = Policy.load(policy_file) if policy_file else Policy()
    policy = policy.merged(
        max_drop=max_drop,
        drop_k=drop_k,
        max_gap=max_gap,
        min_value=min_value,
        baseline_run=baseline_run,
        min_overlap=min_overlap,
    )
    if not policy.active():
        raise DataError("no policy given: use --max-drop, --max-gap, --min-value, --min-overlap or --policy")
    policy.check_for(opts["metric"])
    out = out or new_run_path(Path("runs") / f"check-{model.stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = config_from_options(model, out, False, **opts)
    cfg.progress = False
    cfg.evals_per_player = CHECK_EVALS_PER_UNIT  # used when neither --max-evals nor --max-seconds
    # one deadline for the audit and the policies' measurements; the audit leaves a tenth of it to them
    started = time.monotonic()
    total = cfg.max_seconds
    if total is not None:
        cfg.max_seconds = total - max(POLICY_RESERVE_SECONDS, 0.1 * total)
        if cfg.max_seconds <= 0:
            raise DataError(f"--max-seconds {total:g} is too short for an audit and its policies")
    with sigterm_raises(), deadline(total):
        folder = run_audit(cfg)
        try:
            if _ranking_policies(policy) and _no_ranking(folder):
                raise DeadlineReached("no complete round of the estimation: no ranking to test")
            check_game = None
            if policy.max_drop is not None:
                _, _, check_game = reopen(folder, cfg).games()  # this command's own options, not the folder's
            outcomes = evaluate(policy, folder, check_game)
        except DeadlineReached:
            code = INCONCLUSIVE_EXIT[inconclusive_means]
            click.echo(
                f"INCONCLUSIVE: --max-seconds {total:g} ran out before the policies were measured "
                f"(run folder {folder.path}); --inconclusive {inconclusive_means}: exit {code}"
            )
            if _no_ranking(folder):
                click.echo(
                    "the estimation completed no round of permutations in its share of the budget: give "
                    "check more --max-seconds, or fewer --images per permutation"
                )
            _write_verdict(json_path, "inconclusive", code, [], folder, policy, total, started)
            raise SystemExit(code) from None
    for outcome in outcomes:
        click.echo(outcome.line())
    failed = [o for o in outcomes if not o.passed]
    click.echo(
        f"{'FAILED' if failed else 'PASSED'}: {len(outcomes) - len(failed)}/{len(outcomes)} policies "
        f"(run folder {folder.path})"
    )
    code = 1 if failed else 0
    _write_verdict(json_path, "fail" if failed else "pass", code, outcomes, folder, policy, total, started)
    raise SystemExit(code)


def _ranking_policies(policy) -> bool:
    """Whether a policy reads the run's ranking (the top units), not only the model's metric."""
    return policy.max_drop is not None or policy.min_overlap is not None


def _no_ranking(folder) -> bool:
    """A sampling run the deadline stopped before its first complete round has values from no sample."""
    meta = folder.read_run().get("estimator_metadata") or {}
    return meta.get("permutations") == 0


def _write_verdict(path, verdict, code, outcomes, folder, policy, max_seconds, started) -> None:
    """The machine-readable verdict of ``check --json``."""
    if path is None:
        return
    run = folder.read_run()
    meta = run.get("estimator_metadata") or {}
    doc = {
        "verdict": verdict,
        "exit_code": code,
        "policies": [
            {
                "name": o.name,
                "verdict": "pass" if o.passed else "fail",
                "measured": o.measured,
                "bound": o.bound,
                "detail": o.detail,
            }
            for o in outcomes
        ],
        "policy": {k: v for k, v in vars(policy).items() if v is not None},
        "budget": {
            "max_seconds": max_seconds,
            "wall_seconds": round(time.monotonic() - started, 3),
            "evaluations": run.get("evaluations"),
            "stop_reason": meta.get("stop_reason"),
            "skipped": (run.get("plan") or {}).get("skipped", {}),
        },
        "certainty": {
            "guarantee": run.get("guarantee"),
            "top_k": len(run.get("top_k") or []),
            "certain_in_top_k": run.get("certain_in_top_k"),
            "decisions": run.get("decisions"),
        },
        "run_folder": str(folder.path),
        "model_sha256": run.get("model_sha256"),
    }
    text = json.dumps(doc, indent=2, default=float)
    if str(path) == "-":
        click.echo(text)
    else:
        Path(path).write_text(text + "\n")
