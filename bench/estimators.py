"""Sample efficiency of the Shapley estimators: game evaluations to reach top-k recall >= 0.9.

For every game in the table and every estimator, run the estimator with several seeds and record after
each round the recall of its current top-k (k = 10) against the true top-k (exact values where the game
has them, else a long permutation run). "Evaluations needed" is the count E from which the recall
stays >= 0.9 until the end of the run; a run ends at the game's evaluation cap, once the recall has
held from E to 3E, or (tmab) when it converges: what it returns then is its answer. The table gives
the median over seeds and the ratio to plain permutation sampling (the msapy baseline).

    python bench/estimators.py                 # the synthetic games, 3 seeds (a few minutes)
    python bench/estimators.py --quick         # 1 seed, one game
    python bench/estimators.py --game my_module:make_game   # add a game (factory returning a Game or
                                                             # a BenchGame), e.g. an ONNX fixture model

From Python: ``main(extra_games=[BenchGame("digits-cnn", make_game, images=64)])``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxshap.estimators import ESTIMATORS, estimate
from onnxshap.games import FewHubsGame, Game

TRUTH_SEED = 1_000_003  # the long ground-truth run uses a seed no benchmark run uses


@dataclass
class BenchGame:
    """One row group of the table.

    ``make`` builds the game; ``truth`` returns its exact Shapley values (None: a long permutation run of
    ``truth_permutations`` permutations); ``images`` is the data batch per permutation (None: all data);
    every estimator stops at ``max_evals``.
    """

    name: str
    make: Callable[[], Game]
    truth: Callable[[Game], np.ndarray] | None = None
    images: int | None = None
    max_evals: int = 800_000
    truth_permutations: int = 2000
    note: str = ""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-estimator extra parameters


# (label, method, parameters)
ESTIMATOR_RUNS: list[tuple[str, str, dict[str, Any]]] = [
    ("permutation", "permutation", {}),
    ("permutation antithetic", "permutation", {"antithetic": True}),
    ("truncated", "truncated", {}),
    ("tmab", "tmab", {}),
    ("tmab student-t", "tmab", {"bound": "student-t"}),
    ("loo", "loo", {}),
]


def hubs_game(quota_range: tuple[float, float]) -> Callable[[], Game]:
    """500 players, 30 hubs with weights 40..12 (distinct values around rank 10), the rest 0..2."""
    return lambda: FewHubsGame.make(
        n_players=500, n_hubs=30, n_items=1000, seed=0, hub_weights=(40, 12), quota_range=quota_range
    )


SYNTHETIC: list[BenchGame] = [
    BenchGame(
        "few-hubs, early collapse",
        hubs_game((0.9, 0.965)),
        truth=lambda g: g.shapley_values(),  # type: ignore[attr-defined]
        images=64,
        note="500 players; accuracy falls to chance once ~10% of the weight is gone (like a network); "
        "no single removal changes it (redundancy: leave-one-out is blind)",
    ),
    BenchGame(
        "few-hubs, slow collapse",
        hubs_game((0.5, 0.9)),
        truth=lambda g: g.shapley_values(),  # type: ignore[attr-defined]
        images=64,
        note="same players; accuracy needs half the weight removed to reach chance (truncation helps less)",
    ),
]


def summary(values: np.ndarray) -> np.ndarray:
    """Scalar score per player (mean over elements for vector games)."""
    return values if values.ndim == 1 else values.reshape(len(values), -1).mean(axis=1)


def recall(values: np.ndarray, truth_top: set[int], k: int) -> float:
    """Fraction of the true top-k among the estimate's top-k."""
    top = np.argsort(-summary(values), kind="stable")[:k]
    return len(truth_top.intersection(top.tolist())) / k


def trajectory(
    game: Game,
    method: str,
    params: dict[str, Any],
    truth_top: set[int],
    k: int,
    seed: int,
    cap: int,
    threshold: float = 0.9,
    hold: float = 3.0,
) -> tuple[list[tuple[int, float]], str]:
    """(evaluations, recall) after every round, and why the run ended.

    A run ends at ``cap`` evaluations, at the estimator's own stopping rule (tmab: converged), or once
    the recall has stayed >= ``threshold`` from E evaluations up to ``hold`` * E ("held").
    """
    if method == "loo":
        res = estimate(game, "loo", progress=False)
        return [(res.evaluations, recall(res.values, truth_top, k))], "complete"
    est = ESTIMATORS[method](game, top_k=k, seed=seed, **params)
    est.start()
    points: list[tuple[int, float]] = []
    while True:
        reason = est.stop_reason()
        if reason is None and est.evaluations >= cap:
            reason = "max_evals"
        first = needed(points, threshold)
        if reason is None and method != "tmab" and first is not None and est.evaluations >= hold * first:
            reason = "held"
        if reason is not None:
            return points, reason
        est.step(cap - est.evaluations)
        points.append((est.evaluations, recall(est.estimates()[0], truth_top, k)))


def needed(points: list[tuple[int, float]], threshold: float) -> int | None:
    """First evaluation count from which the recall stays >= threshold to the end (None: never)."""
    first = None
    for evals, rec in points:
        if rec < threshold:
            first = None
        elif first is None:
            first = evals
    return first


def true_top(bg: BenchGame, game: Game, k: int) -> set[int]:
    """Indices of the true top-k."""
    if bg.truth is not None:
        values = bg.truth(game)
    else:
        values = estimate(
            game, "permutation", n_permutations=bg.truth_permutations, seed=TRUTH_SEED, progress=False
        ).values
    return set(np.argsort(-summary(np.asarray(values)), kind="stable")[:k].tolist())


def run_game(bg: BenchGame, seeds: Sequence[int], k: int, threshold: float) -> list[dict[str, Any]]:
    """Rows of the table for one game."""
    t0 = time.perf_counter()
    game = bg.make()
    top = true_top(bg, game, k)
    print(f"\n== {bg.name}: {game.n_players} players, images={bg.images}, cap {bg.max_evals:,} evaluations")
    if bg.note:
        print(f"   {bg.note}")
    print(f"   ground truth in {time.perf_counter() - t0:.1f}s")
    rows = []
    for label, method, base in ESTIMATOR_RUNS:
        params = {**base, **bg.params.get(label, {})}
        if method != "loo" and bg.images is not None:
            params.setdefault("images", bg.images)
        t1 = time.perf_counter()
        per_seed = []
        for seed in seeds if method != "loo" else seeds[:1]:
            points, reason = trajectory(bg.make(), method, params, top, k, seed, bg.max_evals, threshold)
            per_seed.append((needed(points, threshold), points[-1], reason))
        reached = [n for n, _, _ in per_seed if n is not None]
        # a seed that never reached the recall counts as +inf: the median is still a valid order statistic
        median = statistics.median([math.inf if n is None else n for n, _, _ in per_seed])
        rows.append(
            {
                "game": bg.name,
                "estimator": label,
                "needed": per_seed,
                "median": None if math.isinf(median) else median,
                "reached": f"{len(reached)}/{len(per_seed)}",
                "final_recall": statistics.mean(p[1] for _, p, _ in per_seed),
                "end": sorted({r for _, _, r in per_seed}),
                "seconds": time.perf_counter() - t1,
            }
        )
        print(f"   {label:<24} done in {rows[-1]['seconds']:.1f}s", flush=True)
    base_row = rows[0]
    for row in rows:
        ok = row["median"] is not None and base_row["median"] is not None
        row["ratio"] = base_row["median"] / row["median"] if ok else None
    return rows


def print_table(rows: list[dict[str, Any]], k: int, threshold: float) -> None:
    """The results table (markdown)."""
    print(
        f"\nGame evaluations to reach top-{k} recall >= {threshold} (median over seeds, a seed that never "
        "reached it within the cap counting as infinite; ratio = permutation / estimator)\n"
    )
    print(
        "| game | estimator | evaluations needed | per seed | reached | final recall | run ended by | ratio |"
    )
    print("|---|---|---:|---|---:|---:|---|---:|")
    for r in rows:
        per = ", ".join("-" if n is None else f"{n:,}" for n, _, _ in r["needed"])
        med = "not reached" if r["median"] is None else f"{r['median']:,.0f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        print(
            f"| {r['game']} | {r['estimator']} | {med} | {per} | {r['reached']} | "
            f"{r['final_recall']:.2f} | {', '.join(r['end'])} | {ratio} |"
        )


def load_game(spec: str) -> BenchGame:
    """``module:function`` returning a Game or a BenchGame."""
    module, _, func = spec.partition(":")
    if not func:
        raise SystemExit(f"--game needs module:function, got {spec!r}")
    factory = getattr(importlib.import_module(module), func)
    made = factory()
    if isinstance(made, BenchGame):
        return made
    if type(made).__name__ == "BenchGame":  # built by another copy of this module (imported as `estimators`)
        return BenchGame(**vars(made))
    if isinstance(made, Game):
        return BenchGame(spec, factory)
    raise SystemExit(f"{spec} returned {type(made).__name__}, expected a Game or a BenchGame")


def main(argv: Sequence[str] | None = None, extra_games: Sequence[BenchGame] = ()) -> list[dict[str, Any]]:
    """Run the benchmark and print the table; returns the rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per estimator (default 3)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--recall", type=float, default=0.9)
    ap.add_argument("--quick", action="store_true", help="1 seed, first synthetic game only")
    ap.add_argument("--no-synthetic", action="store_true", help="only the games given with --game")
    ap.add_argument(
        "--game", action="append", default=[], help="module:function returning a Game or BenchGame"
    )
    args = ap.parse_args(argv)
    games = [] if args.no_synthetic else (SYNTHETIC[:1] if args.quick else list(SYNTHETIC))
    games += list(extra_games) + [load_game(s) for s in args.game]
    seeds = list(range(1 if args.quick else args.seeds))
    t0 = time.perf_counter()
    rows = [row for bg in games for row in run_game(bg, seeds, args.k, args.recall)]
    print_table(rows, args.k, args.recall)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    return rows


if __name__ == "__main__":
    main()
