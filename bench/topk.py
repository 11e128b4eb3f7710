"""Top-k you can trust: certification, soundness and anytime figures of tmab on hub-and-tail games.

    python -m bench.topk                       # certification (10 seeds) + anytime (5 seeds): ~20 min
    python -m bench.topk --part certify --seeds 10   # also with the game's monotone flag off
    python -m bench.topk --part anytime --seeds 5
    python -m bench.topk --part variants       # other quota ranges / hub weights, 3 seeds each

* **certify**: ``FewHubsGame.make(n_players=200, n_hubs=10, chance=0)`` (value_range 1: marginals in
  [-1, 1]), default tmab (``top_k=10``, simultaneous guarantee, delta 0.05, epsilon 0), 400,000-evaluation
  cap. Per seed: stop reason, evaluations, whether the selection is the true top-10, evaluations per
  permutation in the first and the last round. Target: >= 8 of 10 converge, never wrong, median <=
  100,000 evaluations.
* **anytime**: ``FewHubsGame.make(n_players=3000, n_hubs=10, chance=0)``; separate runs with ``max_evals``
  1k, 2k, 4k, ... 64k for tmab (default) and plain permutation sampling (msapy's method); top-10 recall
  of each run. "Evaluations to reach" = the evaluations spent by the smallest budget from which the
  recall is >= 0.9 at every larger budget. The true top-10 are the 10 hubs: in a weighted voting game a
  heavier player's Shapley value is at least a lighter one's, and the hubs (weights 40..10) outweigh
  every other player (0..2). Target: >= 5x fewer than permutation sampling (median over seeds).
* **variants**: the certification run on other hub-and-tail games.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxshap.estimators import estimate
from onnxshap.games import FewHubsGame

CAP = 400_000
BUDGETS = (1000, 2000, 4000, 8000, 16000, 32000, 64000)


def certify_one(seed: int, game_kwargs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """One certification run."""
    kwargs = dict(game_kwargs)
    monotone = kwargs.pop("monotone", True)
    game = FewHubsGame.make(n_players=200, n_hubs=10, seed=seed, chance=0.0, **kwargs)
    game.monotone = monotone  # False: bounds as for any game, marginals in [-R, R] (as for a real model)
    truth = set(np.argsort(-game.shapley_values(), kind="stable")[:10].tolist())
    t0 = time.perf_counter()
    res = estimate(game, "tmab", top_k=10, seed=seed, max_evals=CAP, progress=False, **params)
    md = res.metadata
    return {
        "seed": seed,
        "stop": md["stop_reason"],
        "converged": md["converged"],
        "evaluations": res.evaluations,
        "right": set(res.top_k.tolist()) == truth,
        "certain": md["certain_in_top_k"],
        "wrong_certain": int(
            ((res.decision == 1) & ~np.isin(np.arange(200), list(truth))).sum()
            + ((res.decision == -1) & np.isin(np.arange(200), list(truth))).sum()
        ),
        "first": md["evaluations_per_permutation_first_round"],
        "last": md["evaluations_per_permutation_last_round"],
        "permutations": md["permutations"],
        "seconds": time.perf_counter() - t0,
    }


def certify(seeds: int, game_kwargs: dict[str, Any], params: dict[str, Any], label: str) -> list[dict]:
    """Print and return the certification table for one game family."""
    print(f"\n== certification: 200 players, 10 hubs, value_range 1 {label} (cap {CAP:,} evaluations)")
    print(
        "| seed | stop | evaluations | top-10 right | certain in top-10 | wrong certain | eval/perm first -> last | s |"
    )
    print("|---:|---|---:|---|---:|---:|---|---:|")
    rows = []
    for seed in range(seeds):
        r = certify_one(seed, game_kwargs, params)
        rows.append(r)
        print(
            f"| {seed} | {r['stop']} | {r['evaluations']:,} | {r['right']} | {r['certain']} | "
            f"{r['wrong_certain']} | {r['first']:.1f} -> {r['last']:.1f} | {r['seconds']:.0f} |",
            flush=True,
        )
    conv = [r for r in rows if r["converged"]]
    med = statistics.median(r["evaluations"] for r in rows)
    wrong = sum(1 for r in conv if not r["right"]) + sum(r["wrong_certain"] > 0 for r in rows)
    print(
        f"converged {len(conv)}/{len(rows)}, wrong top-10 or wrong certain label in {wrong} runs, "
        f"median evaluations {med:,.0f}"
    )
    return rows


def recall_at_budgets(
    game: FewHubsGame, method: str, seed: int, params: dict[str, Any]
) -> list[tuple[int, float]]:
    """(evaluations spent, top-10 recall) of separate runs at each budget."""
    truth = set(np.argsort(-game.weights.sum(axis=0), kind="stable")[:10].tolist())
    out = []
    for budget in BUDGETS:
        res = estimate(game, method, top_k=10, seed=seed, max_evals=budget, progress=False, **params)
        out.append((res.evaluations, len(truth.intersection(res.top_k.tolist())) / 10))
    return out


def reached(points: list[tuple[int, float]], threshold: float = 0.9) -> int | None:
    """Evaluations of the smallest budget from which the recall stays >= threshold."""
    first = None
    for evals, rec in points:
        if rec < threshold:
            first = None
        elif first is None:
            first = evals
    return first


def anytime(seeds: int) -> None:
    """Print the anytime table."""
    print("\n== anytime: 3,000 players, 10 hubs; top-10 recall of separate runs at doubling max_evals")
    print("| seed | method | recall at 1k, 2k, 4k, ... 64k (evaluations spent: recall) | reached 0.9 at |")
    print("|---:|---|---|---:|")
    ratios = []
    for seed in range(seeds):
        game = FewHubsGame.make(n_players=3000, n_hubs=10, seed=seed, chance=0.0)
        got = {}
        for label, method, params in (("permutation", "permutation", {}), ("tmab", "tmab", {})):
            pts = recall_at_budgets(game, method, seed, params)
            got[label] = reached(pts)
            cells = ", ".join(f"{e:,}: {r:.1f}" for e, r in pts)
            print(f"| {seed} | {label} | {cells} | {got[label] or 'never':,} |", flush=True)
        if got["permutation"] and got["tmab"]:
            ratios.append(got["permutation"] / got["tmab"])
    if ratios:
        print(
            f"permutation / tmab evaluations to reach recall 0.9: median {statistics.median(ratios):.1f}x "
            f"({', '.join(f'{r:.1f}x' for r in ratios)})"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("certify", "anytime", "variants", "all"), default="all")
    ap.add_argument(
        "--seeds", type=int, default=None, help="seeds (default 10 certify, 5 anytime, 3 variants)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.part in ("certify", "all"):
        certify(args.seeds or 10, {}, {}, "")
        certify(
            args.seeds or 10, {"monotone": False}, {}, "(monotone flag off: marginals bounded in [-R, R])"
        )
    if args.part in ("anytime", "all"):
        anytime(args.seeds or 5)
    if args.part == "variants":
        for kw in (
            {"quota_range": (0.3, 0.8)},
            {"quota_range": (0.6, 0.95)},
            {"hub_weights": (60, 20)},
            {"hub_weights": (30, 8)},
        ):
            certify(args.seeds or 3, kw, {}, f"({kw})")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
