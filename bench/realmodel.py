"""TMAB top-30 on a real model: rapidocr's PP-OCR text-direction classifier or text recognizer, over
rendered text lines.

    python bench/realmodel.py [--model ppocr_cls|ppocr_rec] [--images N] [--max-minutes 15] [--exclude REGEX]

``ppocr_cls`` (default; PaddlePaddle export, 3,146 conv filters) is valued by accuracy on lines from
``models.textlines`` (labels known by construction: 0 upright, 1 rotated 180 degrees), 128 per permutation;
``ppocr_rec`` (PP-OCRv4 recognizer, 8,364 conv filters, CTC) by the share of lines read exactly (metric
``ctc``) on lines from ``models.textlines_rec`` (the strings are known), 64 per permutation. Models come from
``models.thirdparty.fetch``. The run goes through the public API only (``instrument``, ``OnnxGame``,
``estimate``) under cProfile, and prints: v(all), v(empty), wall time, evaluations, evaluations/s, whether
tmab converged (else which budget stopped it), the share of wall time spent inside ONNX Runtime (target >=
90%), and the removal check on other rendered lines (held out): the metric with the top-30 units removed vs
30 random units removed, and the removal curves (k = 1..10, 20, 30) of the shapley, leave-one-out and random
rankings (issue 12's target: shapley at or below leave-one-out within 0.05 at k = 3..10; at k = 1
leave-one-out is optimal on the valuation lines by construction, so the gap there is reported).

Leave-one-out values every unit once on the valuation lines (one evaluation per unit, after the estimation,
timed separately, its expected time printed first): about 10 minutes on ppocr_cls, hours on ppocr_rec with
every layer analysed. ``--exclude REGEX`` leaves out the layers it matches (as ``onnxshap run --exclude``), so
a run can analyse the last layers only (each evaluation then runs from the first analysed layer on);
``--no-loo`` skips it.

``--lines N`` values the game on N rendered lines of which each walk draws ``--images`` (tmab's ``images``:
fewer lines per evaluation, more walks in the same time); ``--check-lines`` (default 512) sets the held-out
lines of the removal check (at chance, 128 lines have a standard error of ~0.044, 512 of ~0.022).

``--param KEY=JSON`` (repeatable) passes another tmab parameter, e.g. ``--param rotations=40``.

``--loo-ratio`` runs ``bench/loo.py`` on ``--images`` lines instead: leave-one-out of all 3,146 filters
against as many forward passes of the original model, side by side (``--images 200`` for issue 13's figure).

``--max-minutes`` bounds the estimation (target from issue 6: under 15 minutes), passed as
``max_seconds``: a deadline checked between ONNX Runtime calls; a round it cuts keeps its complete pieces
(rotation groups of 3 walks), so the run ends within one evaluation of the limit. Default tmab otherwise
(simultaneous guarantee, delta 0.05, 16 permutations per round). ``--max-evals`` adds an evaluation budget.
Printed besides: how many of the top-k are certain (and under which guarantee), the decisions, and the
evaluations per permutation in the first and in the last round (elimination paying off).
The ORT share is measured under cProfile, whose overhead falls on the Python side, so it is if anything
an underestimate. Timings depend on the machine's load: the load averages are printed before and after.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import textlines, textlines_rec
from models.thirdparty import FetchError, fetch
from onnxshap import estimate, instrument
from onnxshap.audit.curves import random_curve, removal_curve
from onnxshap.data import Dataset
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.metrics.ctc import paddle_charset

VALUATION_SEED = 0
CHECK_SEED = 1  # the removal check uses other rendered lines
RANDOM_DRAWS = 5
# estimate() arguments the benchmark sets itself (a --param may not override them)
OWN_PARAMS = frozenset(
    {"method", "top_k", "seed", "images", "max_seconds", "max_evals", "bound", "checkpoint_dir", "progress"}
)
CURVE_STEPS = [0, *range(1, 11), 20, 30]  # held-out removal curves: k units removed


@dataclass(frozen=True)
class RealModel:
    """A catalogue model, the metric it is valued by and how its rendered lines are made."""

    key: str
    title: str
    metric: str
    images: int  # default lines per permutation (and valuation lines)
    make_data: Callable[[int, int, Path], Dataset]  # (n, seed, model path) -> lines
    describe_data: Callable[[Dataset], str]


def _rec_lines(n: int, seed: int, path: Path) -> Dataset:
    return textlines_rec.make_dataset(n, seed, paddle_charset(path))


REAL_MODELS = {
    "ppocr_cls": RealModel(
        "ppocr_cls",
        "PP-OCR cls",
        "accuracy",
        128,
        lambda n, seed, _: textlines.make_dataset(n, seed=seed),
        lambda d: f"{int(d.labels.sum())} rotated",
    ),
    "ppocr_rec": RealModel(
        "ppocr_rec",
        "PP-OCRv4 rec",
        "ctc",
        64,
        _rec_lines,
        lambda d: f"{float((d.labels >= 0).sum(axis=1).mean()):.1f} characters per line",
    ),
}


_ORT_RUN = re.compile(r"\brun(_with_\w+)?\b")


def ort_seconds(stats: pstats.Stats) -> tuple[float, float]:
    """(seconds in ORT's native run calls, seconds in its Python ``run*`` wrappers), cumulative.

    The wrappers (``InferenceSession.run`` in onnxruntime/capi) add input validation to the native call;
    a wrapper called by another wrapper is not counted twice.
    """
    table = stats.stats  # type: ignore[attr-defined]  # {(file, line, func): (cc, nc, tt, ct, callers)}
    native = sum(
        row[3]
        for (file, _, func), row in table.items()
        if file == "~" and "onnxruntime" in func and _ORT_RUN.search(func)
    )
    wrappers = {
        key
        for key in table
        if "onnxruntime" in Path(key[0]).parts and key[2].startswith("run") and key[0] != "~"
    }
    wrapper = sum(table[key][3] for key in wrappers if not wrappers.intersection(table[key][4]))
    return native, wrapper


def _load() -> str:
    """The 1, 5 and 15 minute load averages, or "n/a"."""
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def removal_accuracy(game: OnnxGame, removed: np.ndarray) -> float:
    """The game's value with the players in ``removed`` switched off."""
    coalition = np.ones((1, game.n_players), dtype=bool)
    coalition[0, removed] = False
    return float(game(coalition)[0])


def seconds_per_evaluation(game: OnnxGame, repeats: int = 3, batch: int = 4) -> float:
    """Median measured seconds per coalition (full coalitions; masked values do not change the cost)."""
    coalitions = np.ones((batch, game.n_players), dtype=bool)
    game(coalitions[:1])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        game(coalitions)
        times.append((time.perf_counter() - start) / batch)
    return float(np.median(times))


def describe_units(inst, args: argparse.Namespace) -> str:
    """What the units are: "conv filters" as before, with the layer and skip counts when not the default."""
    names = {"conv": "conv filters", "dense": "dense neurons"}
    if args.units == "conv" and not args.exclude:
        return names["conv"]
    count = {
        kind: sum(la.channels for la in inst.units.layers if la.kind == kind) for kind in inst.units.kinds
    }
    parts = [f"{n} {names[k]}" for k, n in count.items()]
    parts.append(f"{len(inst.units.layers)} layers, {len(inst.units.skipped)} skipped")
    return ", ".join(parts) + (f"; --exclude {args.exclude}" if args.exclude else "")


def loo_ranking(game: OnnxGame, progress: bool) -> tuple[np.ndarray, float]:
    """Units by leave-one-out value on the valuation lines, descending, and the seconds it took."""
    start = time.perf_counter()
    res = estimate(game, method="loo", progress=progress)
    return np.argsort(-res.scores, kind="stable"), time.perf_counter() - start


def print_curves(curves: dict[str, np.ndarray], steps: list[int]) -> None:
    """The held-out removal curves as a table, and shapley's gap to leave-one-out (issue 12's target)."""
    print("            k        " + " ".join(f"{k:>6d}" for k in steps))
    for name, values in curves.items():
        print(f"            {name:<8} " + " ".join(f"{v:6.3f}" for v in values))
    if "loo" in curves:
        gap = curves["shapley"] - curves["loo"]
        first = steps.index(1)
        mid = [i for i, k in enumerate(steps) if 3 <= k <= 10]
        print(
            f"            shapley - loo: k=1 {gap[first]:+.3f}; k=3..10 max {gap[mid].max():+.3f} "
            "(target <= +0.05)"
        )


def _param(text: str) -> tuple[str, object]:
    """``KEY=JSON`` -> (key, value), for ``--param``."""
    key, sep, value = text.partition("=")
    try:
        if not (sep and key.isidentifier()):
            raise ValueError
        return key, json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=JSON (e.g. rotations=40), got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ppocr_cls", choices=sorted(REAL_MODELS), help="real model")
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="rendered lines per evaluation, also the valuation lines without --lines (default: 128 cls, 64 rec)",
    )
    parser.add_argument(
        "--lines",
        type=int,
        default=None,
        help="valuation lines (default: --images); walks draw --images of them",
    )
    parser.add_argument(
        "--check-lines",
        type=int,
        default=512,
        help="held-out lines of the removal check (512: a standard error of ~0.022 at chance)",
    )
    parser.add_argument("--max-minutes", type=float, default=15.0, help="time guard of the estimation")
    parser.add_argument(
        "--max-evals", type=int, default=None, help="evaluation budget (default: none, only the time)"
    )
    parser.add_argument("--top-k", type=int, default=30)
    parser.add_argument(
        "--bound",
        default=None,
        choices=("betting", "stitched", "plugin-bernstein", "bernstein", "hoeffding", "student-t"),
        help="tmab's intervals (default: betting confidence sequences, simultaneous guarantee)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        type=_param,
        metavar="KEY=JSON",
        help="another tmab parameter, e.g. --param rotations=40 (repeatable)",
    )
    parser.add_argument("--units", default="conv", help="unit kinds: conv (default) or conv,dense")
    parser.add_argument("--exclude", default=None, help="leave out layers whose name matches this regex")
    parser.add_argument("--no-loo", action="store_true", help="skip leave-one-out (one evaluation per unit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="keep the checkpoint here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--loo-ratio",
        action="store_true",
        help="instead: time leave-one-out of every filter against as many forward passes (bench/loo.py)",
    )
    args = parser.parse_args(argv)
    if args.loo_ratio:
        from bench.loo import main as loo_main

        return loo_main(["--images", str(args.images or 200)])
    real = REAL_MODELS[args.model]
    images = args.images or real.images
    extra = dict(args.param)
    clash = sorted(set(extra) & OWN_PARAMS)
    if clash:
        parser.error(f"--param {', '.join(clash)}: set by the benchmark itself (use its own option)")

    try:
        path = fetch(real.key)
    except FetchError as exc:
        print(f"cannot fetch {real.title}: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = real.make_data(args.lines or images, VALUATION_SEED, path)
    check = real.make_data(args.check_lines, CHECK_SEED, path)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    inst = instrument(path, units=args.units, exclude=args.exclude, provider="cpu")
    game = OnnxGame(inst, data.x, data.labels, metric=real.metric)
    t_setup = time.perf_counter() - t0
    per_eval = seconds_per_evaluation(game)
    max_seconds = args.max_minutes * 60

    print(
        f"model       {real.key} ({path.name}): {inst.n_units} units ({describe_units(inst, args)}), provider cpu"
    )
    print(
        f"data        {len(data)} rendered lines (seed {VALUATION_SEED}, {real.describe_data(data)}), "
        f"{min(images, len(data))} per permutation"
    )
    print(f"metric      {game.metric.describe()}, in-graph reduction {game.reduction()}")
    print(
        f"setup       render {t_data:.1f} s, instrument + game {t_setup:.1f} s, {per_eval:.3f} s/evaluation"
    )
    print(f"load avg    {_load()} (1/5/15 min) on {os.cpu_count()} CPUs before the run")
    budget = f", max_evals {args.max_evals}" if args.max_evals else ""
    print(
        f"guard       {args.max_minutes:g} min -> max_seconds {max_seconds:.0f}{budget}, "
        f"bound {args.bound or 'default'}{', ' + json.dumps(extra) if extra else ''}"
    )
    sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="onnxshap-realmodel-") as tmp:
        checkpoint_dir = args.checkpoint_dir or Path(tmp) / "checkpoint"
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        res = estimate(
            game,
            method="tmab",
            top_k=args.top_k,
            seed=args.seed,
            images=images,
            max_seconds=max_seconds,
            max_evals=args.max_evals,
            bound=args.bound,
            checkpoint_dir=checkpoint_dir,
            **extra,
            progress=not args.no_progress,
        )
        profile.disable()
        wall = time.perf_counter() - start
    native, wrapper = ort_seconds(pstats.Stats(profile))

    meta = res.metadata
    assert res.top_k is not None
    top = np.asarray(res.top_k[: args.top_k])
    rng = np.random.default_rng(args.seed + 1)
    holdout = game.with_data(check.x, check.labels, None)
    acc_full = removal_accuracy(holdout, np.zeros(0, dtype=np.intp))
    acc_top = removal_accuracy(holdout, top)
    acc_random = [
        removal_accuracy(holdout, rng.choice(game.n_players, size=len(top), replace=False))
        for _ in range(RANDOM_DRAWS)
    ]
    acc_top_valuation = removal_accuracy(game, top)

    print()
    print(f"v(all)      {float(meta['v_all']):.4f}   v(empty) {float(meta['v_empty']):.4f}")
    print(f"wall time   {wall:.1f} s ({wall / 60:.2f} min; target < 15 min)")
    print(f"evaluations {res.evaluations}   ({res.evaluations / wall:.2f} evaluations/s)")
    permutations = int(res.samples.max()) if res.samples.size else 0
    print(f"samples     {permutations} permutations walked (max samples of a unit)")
    print(f"stopped     {meta['stop_reason']} (converged: {meta['converged']})")
    decided = res.decision if res.decision is not None else np.zeros(game.n_players, np.int8)
    print(
        f"certain     {meta.get('certain_in_top_k')} of the top {len(top)} ({meta.get('guarantee')} guarantee); "
        f"{int((decided == 1).sum())} certainly in, {int((decided == -1).sum())} certainly out, "
        f"{int((decided == 0).sum())} undecided"
    )
    first, last = (
        meta.get("evaluations_per_permutation_first_round"),
        meta.get("evaluations_per_permutation_last_round"),
    )
    if first is not None and last is not None:
        print(
            f"eval/perm   {first:.1f} in the first round -> {last:.1f} in the last ({meta['rounds']} rounds)"
        )
    focus = meta.get("focus")
    if focus:
        print(
            f"focus       {len(focus['contenders'])} contenders, {focus['draws']} draws over positions "
            f"1..{focus['depth'] - 1}, {focus['evaluations']} evaluations; "
            f"{len(focus['focused_units'])} units valued by the strata"
        )
    print(
        f"ORT share   {native / wall:.1%} of wall time in ORT's C++ run calls "
        f"({wrapper / wall:.1%} with its Python wrapper; target >= 90%; under cProfile)"
    )
    print(f"load avg    {_load()} after the run (other processes slow ORT down on a shared CPU)")
    ids = inst.units.unit_ids()
    print(f"top-5       {', '.join(f'{ids[i]} ({res.values[i]:.3f})' for i in top[:5])}")
    print(f"removal     on {len(check)} other lines (seed {CHECK_SEED}): all units {acc_full:.4f}")
    print(f"            top-{len(top)} removed {acc_top:.4f}  (valuation lines: {acc_top_valuation:.4f})")
    print(
        f"            {len(top)} random removed {np.mean(acc_random):.4f} "
        f"(mean of {RANDOM_DRAWS} draws, {min(acc_random):.4f}..{max(acc_random):.4f})"
    )
    sys.stdout.flush()

    rankings = {"shapley": np.argsort(-res.scores, kind="stable")}
    if args.no_loo:
        print("loo         skipped (--no-loo)")
    else:
        print(
            f"loo         {inst.n_units} evaluations on the {len(data)} valuation lines "
            f"(expected ~{inst.n_units * per_eval / 60:.1f} min at the measured speed)"
        )
        sys.stdout.flush()
        rankings["loo"], loo_seconds = loo_ranking(game, progress=not args.no_progress)
        print(f"            took {loo_seconds:.1f} s ({inst.n_units / loo_seconds:.2f} evaluations/s)")
    steps = [k for k in CURVE_STEPS if k < inst.n_units]
    curves = {name: removal_curve(holdout, ranking, steps) for name, ranking in rankings.items()}
    curves["random"] = random_curve(holdout, steps, args.seed, draws=RANDOM_DRAWS)
    print(
        f"curves      held-out {real.metric} ({len(check)} other lines) after removing each ranking's top k "
        f"(random: mean of {RANDOM_DRAWS} draws)"
    )
    print_curves(curves, steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
