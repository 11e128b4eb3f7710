"""TMAB top-k on a real model: rapidocr's PP-OCR text-direction classifier over rendered text lines.

    python bench/realmodel.py [--images 128] [--max-minutes 15] [--top-k 10] [--exclude REGEX]

The model (PaddlePaddle export, 3,146 conv filters) comes from ``models.thirdparty.fetch("ppocr_cls")``,
the data from ``models.textlines`` (labels known by construction: 0 upright, 1 rotated 180 degrees). The
run goes through the public API only (``instrument``, ``OnnxGame``, ``estimate``) under cProfile, and
prints: v(all), v(empty), wall time, evaluations, evaluations/s, the stop reason (converged only when the
stop rule fired), the guarantee, the decisions (units certainly in / out of the top k, undecided), the
evaluations per permutation in the first and the last round (elimination at work), the share of wall
time inside ONNX Runtime, and the removal curves on other rendered lines (held out): accuracy after
removing the top k = 1..10 units of the Shapley ranking, of the leave-one-out ranking (valued on the
same lines as the Shapley values; cached in .cache/realmodel, it costs one evaluation per unit) and of
random rankings (mean of 5 draws). At k = 1 leave-one-out is optimal by construction on the valuation
lines; the figure to watch is k = 3..10.

``--max-minutes`` bounds the estimation (``max_seconds``). The estimator checks the clock between rounds
of permutations only, so the bench walks one permutation per round (``permutations_per_round=1``; on
CPU coalitions are evaluated one at a time anyway): the run ends at most one permutation after the limit.
``--max-evals`` adds an evaluation budget (reproducible: the result then depends only on the seed and
that budget, unless the time limit stops it first). ``--exclude`` leaves layers out (a regular
expression of layer names, as ``onnxshap run --exclude``): analysing late layers only makes every
evaluation cheaper (the fast path runs the rest once). ``--threads`` caps ONNX Runtime's intra-op
threads (default 2). Timings depend on the machine's load: the load averages are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.textlines import make_dataset
from models.thirdparty import FetchError, fetch
from onnxshap import estimate, instrument
from onnxshap.games.onnx_game import OnnxGame

VALUATION_SEED = 0
CHECK_SEED = 1  # the removal check uses other rendered lines
RANDOM_DRAWS = 5
PERMUTATIONS_PER_ROUND = 1  # the clock is checked between rounds: keep them short
CURVE_K = list(range(1, 11))
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "realmodel"


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


def loo_values(game: OnnxGame, key: str) -> np.ndarray:
    """Leave-one-out values on the valuation lines (n evaluations), cached under .cache/realmodel."""
    path = CACHE / f"loo-{key}.npy"
    if path.is_file():
        return np.load(path)
    values = estimate(game, method="loo", progress=False).values
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values


def curve(game: OnnxGame, ranking: np.ndarray, ks: list[int]) -> np.ndarray:
    """Accuracy after removing ranking[:k] for each k."""
    return np.array([removal_accuracy(game, np.asarray(ranking[:k], dtype=np.intp)) for k in ks])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="rendered lines valuing the game")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="time guard of the estimation")
    parser.add_argument(
        "--max-evals", type=int, default=None, help="evaluation budget (default: none, only the time)"
    )
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--exclude", default=None, help="regular expression of layer names to leave out")
    parser.add_argument(
        "--bound",
        default=None,
        choices=("betting", "stitched", "plugin-bernstein", "bernstein", "hoeffding", "student-t"),
        help="tmab's intervals (default: betting confidence sequences, simultaneous guarantee)",
    )
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="keep the checkpoint here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)

    try:
        path = fetch("ppocr_cls")
    except FetchError as exc:
        print(f"cannot fetch PP-OCR cls: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = make_dataset(args.images, seed=VALUATION_SEED)
    check = make_dataset(args.images, seed=CHECK_SEED)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    inst = instrument(path, provider="cpu", exclude=args.exclude, threads=args.threads)
    game = OnnxGame(inst, data.x, data.labels, metric="accuracy")
    t_setup = time.perf_counter() - t0
    per_eval = seconds_per_evaluation(game)
    max_seconds = args.max_minutes * 60
    params = {} if args.bound is None else {"bound": args.bound}

    print(f"model       ppocr_cls ({path.name}): {inst.n_units} units (conv filters), provider cpu")
    if args.exclude:
        print(f"exclude     layers matching {args.exclude!r}")
    print(f"data        {len(data)} rendered lines (seed {VALUATION_SEED}, {int(data.labels.sum())} rotated)")
    print(
        f"setup       render {t_data:.1f} s, instrument + game {t_setup:.1f} s, {per_eval:.3f} s/evaluation "
        f"({args.threads} threads)"
    )
    print(f"load avg    {_load()} (1/5/15 min) on {os.cpu_count()} CPUs before the run")
    budget = f", max_evals {args.max_evals}" if args.max_evals else ""
    print(
        f"guard       {args.max_minutes:g} min -> max_seconds {max_seconds:.0f}{budget}, 1 permutation per "
        f"round, top_k {args.top_k}"
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
            images=args.images,
            max_seconds=max_seconds,
            max_evals=args.max_evals,
            permutations_per_round=PERMUTATIONS_PER_ROUND,
            checkpoint_dir=checkpoint_dir,
            progress=not args.no_progress,
            **params,
        )
        profile.disable()
        wall = time.perf_counter() - start
    native, wrapper = ort_seconds(pstats.Stats(profile))

    meta = res.metadata
    dec = meta["decisions"]
    per_perm = meta["evaluations_per_permutation_by_round"]
    active = meta["active_by_round"]
    print()
    print(f"v(all)      {float(meta['v_all']):.4f}   v(empty) {float(meta['v_empty']):.4f}")
    print(f"wall time   {wall:.1f} s ({wall / 60:.2f} min)")
    print(f"evaluations {res.evaluations}   ({res.evaluations / wall:.2f} evaluations/s)")
    print(f"walks       {meta['permutations']} permutations in {meta['rounds']} rounds")
    print(f"stopped     {meta['stop_reason']} (converged: {meta['converged']})")
    print(f"guarantee   {meta['guarantee']}: {meta['guarantee_statement']}")
    print(
        f"decisions   top-{args.top_k}: {meta['certain_in_top_k']} certain; {dec['in']} units certainly in, "
        f"{dec['out']} certainly out, {dec['undecided']} undecided"
    )
    if per_perm:
        print(
            f"cost        evaluations per permutation: first round {per_perm[0]:.1f} ({active[0]} active), "
            f"last round {per_perm[-1]:.1f} ({active[-1]} active); mean "
            f"{meta['evaluations_per_permutation']:.1f}"
        )
    if meta.get("settle_budget_estimate"):
        est = meta["settle_budget_estimate"]
        print(
            f"settle      a rough extrapolation: {est['low']:,}..{est['high']:,} more evaluations to decide "
            f"the others ({est['ties']} tied at the boundary, {est['too_close']} too close to call, "
            f"{est['without_interval']} without an interval)"
        )
    print(
        f"ORT share   {native / wall:.1%} of wall time in ORT's C++ run calls "
        f"({wrapper / wall:.1%} with its Python wrapper; under cProfile)"
    )
    print(f"load avg    {_load()} after the run (other processes slow ORT down on a shared CPU)")

    key_src = f"{inst.units.model_sha256}-{args.images}-{VALUATION_SEED}-{args.exclude}"
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    t0 = time.perf_counter()
    loo = loo_values(game, key)
    t_loo = time.perf_counter() - t0
    holdout = game.with_data(check.x, check.labels, None)
    acc_full = removal_accuracy(holdout, np.zeros(0, dtype=np.intp))
    shapley = curve(holdout, res.ranking(), CURVE_K)
    loo_curve = curve(holdout, np.argsort(-loo, kind="stable"), CURVE_K)
    rng = np.random.default_rng(args.seed + 1)
    random = np.mean(
        [curve(holdout, rng.permutation(game.n_players), CURVE_K) for _ in range(RANDOM_DRAWS)], axis=0
    )
    ids = inst.units.unit_ids()
    top = res.ranking()[:5]
    print(f"top-5       {', '.join(f'{ids[i]} ({res.values[i]:.4f}, {res.decision[i]:+d})' for i in top)}")
    print(
        f"\nremoval curves on {len(check)} other lines (seed {CHECK_SEED}; all units: {acc_full:.4f}); "
        f"leave-one-out {'from the cache' if t_loo < 1 else f'in {t_loo:.0f} s'}"
    )
    print("| k | shapley | loo | random | shapley - loo |")
    print("|---:|---:|---:|---:|---:|")
    for i, k in enumerate(CURVE_K):
        print(
            f"| {k} | {shapley[i]:.4f} | {loo_curve[i]:.4f} | {random[i]:.4f} | {shapley[i] - loo_curve[i]:+.4f} |"
        )
    gap = shapley[2:] - loo_curve[2:]
    print(
        f"k = 3..10: shapley - loo at most {gap.max():+.4f} (target <= +0.05); shapley - random at most "
        f"{(shapley[2:] - random[2:]).max():+.4f}; k = 1 gap {shapley[0] - loo_curve[0]:+.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
