"""Evaluations per second of the single-process engine against the Ray backend with 1 and 2 workers.

    python -m bench.scaling [--permutations 64] [--images 128] [--repeats 3] [--address HOST:PORT]

Same game for every backend (the digits CNN's 80 filters, accuracy, ``--images`` items per permutation,
plain permutation sampling, 16 permutations per round), timed alternately ``--repeats`` times; prints the
best evaluations per second of each, the Ray pool's start-up time (not counted), and the scheduling
overhead per round: (a) round wall time minus the busiest actor's walking time, on the real game, and
(b) the wall time of a round of a trivial game (80 players, v = 0, no model), where it is all overhead.
The values of every backend are checked to be identical. Without ``--address`` a local Ray instance
with the machine's CPUs is started on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PER_ROUND = 16


def zero_game(coalitions: np.ndarray) -> np.ndarray:
    """A game with nothing to compute: what is left of a round is scheduling."""
    return np.zeros(len(coalitions))


def digits_game():
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(ROOT / "models" / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(ROOT / "models" / "digits_test.npz") as npz:
        return OnnxGame(inst, npz["x"], npz["y"], metric="accuracy")


def timed(game, perms: int, images: int | None, backend) -> tuple[float, object]:
    from onnxshap.estimators import estimate

    t0 = time.perf_counter()
    res = estimate(
        game,
        "permutation",
        n_permutations=perms,
        permutations_per_round=PER_ROUND,
        images=images,
        seed=0,
        progress=False,
        backend=backend,
    )
    return time.perf_counter() - t0, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=64)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--address", default=None, help="Ray cluster to use (default: a local instance)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.address is None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local instance on 127.0.0.1
    import ray

    from onnxshap.distributed.ray_executor import RayExecutor
    from onnxshap.games import FunctionGame
    from onnxshap.runtime.providers import physical_cores

    ray.init(
        address=args.address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    print(
        f"machine: {os.cpu_count()} logical / {physical_cores()} physical cores; "
        f"Ray cluster: {ray.cluster_resources().get('CPU', 0):g} CPU, {ray.cluster_resources().get('GPU', 0):g} GPU"
    )
    game = digits_game()
    game.v_all, game.v_empty  # noqa: B018 - computed once, outside the timings
    # A pool reserves its share of the cluster's CPUs, so one pool at a time: each repetition starts
    # it (start-up timed apart), runs the same estimate as the single process, and closes it.
    names = ["single process", "ray x1", "ray x2"]
    times: dict[str, list[float]] = {name: [] for name in names}
    startup: dict[str, list[float]] = {name: [] for name in names[1:]}
    overhead: dict[str, list[float]] = {name: [] for name in names[1:]}
    trivial_round: dict[str, list[float]] = {name: [] for name in names[1:]}
    results: dict[str, object] = {}
    trivial = FunctionGame(zero_game, 80)
    for rep in range(args.repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            if name == "single process":
                seconds, results[name] = timed(game, args.permutations, args.images, "local")
                times[name].append(seconds)
                continue
            with RayExecutor(workers=int(name[-1])) as ex:
                t0 = time.perf_counter()
                ex.bind(game)
                startup[name].append(time.perf_counter() - t0)
                seconds, results[name] = timed(game, args.permutations, args.images, ex)
                times[name].append(seconds)
                overhead[name] += [r["wall"] - max(r["busy"]) for r in ex.round_times]
                ex.round_times.clear()
                timed(trivial, 10 * PER_ROUND, None, ex)
                trivial_round[name] += [r["wall"] for r in ex.round_times[1:]]  # first: ships the game

    evaluations = results["single process"].evaluations
    for name, res in results.items():
        assert np.array_equal(res.values, results["single process"].values), name
        assert res.evaluations == evaluations, name
    t0 = time.perf_counter()
    timed(trivial, 10 * PER_ROUND, None, "local")
    trivial_local = (time.perf_counter() - t0) / 10

    base = evaluations / min(times["single process"])
    print(
        f"\ndigits CNN, accuracy, {args.images} images per permutation, {args.permutations} permutations "
        f"({evaluations} evaluations, {PER_ROUND} per round), best of {args.repeats}; values identical\n"
    )
    print(
        "| backend | evals/s | vs single process | pool start-up s | overhead/round ms (real) | round of a trivial game ms |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        rate = evaluations / min(times[name])
        if name in startup:
            extra = (
                f"{statistics.median(startup[name]):.1f} | {statistics.median(overhead[name]) * 1e3:.1f} | "
                f"{statistics.median(trivial_round[name]) * 1e3:.1f}"
            )
        else:
            extra = f"- | - | {trivial_local * 1e3:.1f}"
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {extra} |")


if __name__ == "__main__":
    main()
