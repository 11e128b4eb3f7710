"""Leave-one-out at the cost it should have: LOO of PP-OCR cls vs as many forward passes of the original.

    python -m bench.loo [--images 200] [--threads 2] [--fraction 1] [--check 8] [--verbose] [--end-to-end]

The model is rapidocr's PP-OCR text-direction classifier (3,146 conv filters in 53 layers,
``models.thirdparty.fetch("ppocr_cls")``), valued on ``--images`` rendered text lines
(``models.textlines``, accuracy). Two things are timed side by side:

* the leave-one-out values of every filter, as ``estimate(game, method="loo")`` computes them
  (``OnnxGame.leave_one_out``: per layer, the graph cut at that layer's mask, the prefix run once, each
  filter of the layer valued on the suffix), including v(all), building each layer's sessions and running
  its prefix;
* as many forward passes of the original (uninstrumented) model on the same items as there are filters.

They are interleaved finely (per layer, groups of 4 filters and 4 forward passes, alternating which goes
first), so that the load of a shared machine hits both alike. Their ratio is the figure of issue 13
(target <= 0.7). The floor printed next to it is what a perfect per-layer cut would cost: per filter, the
FLOPs of the nodes its layer's mask feeds, averaged over filters, over the model's FLOPs (convolutions and
matrix products; ``onnxshap.graph.flops``). ``--fraction F`` times only that share of each layer's filters
(and as many forward passes) and scales up: a quick estimate on a busy machine. ``--end-to-end`` times one
``estimate(method="loo")`` call and then 3,146 forward passes, one after the other (on a quiet machine the
two modes should agree). ``--check N`` values N random filters again on the game's normal path (one
evaluation of the whole coalition each) and says whether the values are equal (exit 1 if not).
The load averages are printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.textlines import make_dataset
from models.thirdparty import FetchError, fetch
from onnxshap import estimate, instrument
from onnxshap.games.base import Game
from onnxshap.games.onnx_game import OnnxGame
from onnxshap.graph.flops import flops_after

SEED = 0


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def flops_floor(inst, item_shape: tuple[int, ...]) -> tuple[float, float]:
    """(FLOPs of one item through the model, the unit-averaged share after each unit's layer's mask)."""
    total, after = flops_after(inst.model, inst.units.layers, {inst.input_names[0]: (1, *item_shape)})
    per_unit = [after[la.layer] for la in inst.units.layers for _ in range(la.channels)]
    return total, float(np.mean(per_unit)) / total


GROUP = 4  # units per leave_one_out call between forward passes: the grain of the interleaving


def measure(
    game: OnnxGame, inst, x: np.ndarray, fraction: float = 1.0, verbose: bool = False
) -> dict[str, object]:
    """Seconds of leave-one-out (all units) and of as many forward passes of the original model.

    The two sides are interleaved finely, so that a load change on a shared machine hits both alike: per
    layer, its setup (cut, sessions, prefix run: counted on the leave-one-out side) and first unit (a new
    session's first run is slower) with one forward pass, then groups of GROUP units, each followed (or
    preceded, alternately) by as many forward passes. With `fraction` < 1, each layer values only that
    share of its units (at least 2) and runs as many forward passes, and both times past the first unit
    are scaled up to the whole layer: every unit of a layer costs the same, so this estimates the full
    figures in a fraction of the time."""
    t0 = time.perf_counter()
    _ = game.v_all
    loo = time.perf_counter() - t0
    inst.run_original(x)  # warm-up of the original model's session (not counted)
    forward = setup = 0.0
    values = np.full(game.n_players, np.nan)

    def run_loo(players: np.ndarray) -> float:
        t0 = time.perf_counter()
        values[players] = game.leave_one_out(players)
        return time.perf_counter() - t0

    def run_forward(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            inst.run_original(x)
        return time.perf_counter() - t0

    flip = False
    for li, layer in enumerate(inst.units.layers):
        n = min(layer.channels, max(2, int(np.ceil(fraction * layer.channels))))
        players = np.arange(layer.offset, layer.offset + n)
        scale = (layer.channels - 1) / (n - 1) if n > 1 else 1.0
        t0 = time.perf_counter()
        game._loo_bound((li,))  # cut, sessions, prefix run (what leave_one_out does first)
        t_setup = time.perf_counter() - t0 + run_loo(players[:1])
        f_first = run_forward(1)
        t_rest = f_rest = 0.0
        for g in range(1, n, GROUP):
            group = players[g : g + GROUP]
            flip = not flip
            if flip:
                t_rest += run_loo(group)
                f_rest += run_forward(len(group))
            else:
                f_rest += run_forward(len(group))
                t_rest += run_loo(group)
        t_loo = t_setup + t_rest * scale
        t_fwd = f_first + f_rest * scale
        loo += t_loo
        setup += t_setup
        forward += t_fwd
        if verbose:
            print(
                f"  {layer.layer:12s} {layer.channels:4d} filters ({n} timed)  loo {t_loo:7.2f} s "
                f"(setup + first {t_setup:5.2f})  forward {t_fwd:7.2f} s  ratio {t_loo / t_fwd:5.2f}",
                flush=True,
            )
    return {"loo": loo, "forward": forward, "setup": setup, "values": values}


def end_to_end(game: OnnxGame, inst, x: np.ndarray) -> dict[str, object]:
    """Seconds of ``estimate(game, method="loo")`` as one call, then of n_units forward passes (not
    interleaved: for a quiet machine)."""
    t0 = time.perf_counter()
    res = estimate(game, method="loo", progress=False)
    loo = time.perf_counter() - t0
    inst.run_original(x)
    t0 = time.perf_counter()
    for _ in range(inst.n_units):
        inst.run_original(x)
    return {"loo": loo, "forward": time.perf_counter() - t0, "values": res.values}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="rendered text lines valuing the game")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--check", type=int, default=8, help="filters re-valued on the normal path")
    parser.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="time this share of each layer's units and forward passes and scale up (quick runs)",
    )
    parser.add_argument("--verbose", action="store_true", help="one line per layer")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="time estimate(method='loo') as one call, then the forward passes (a quiet machine only)",
    )
    args = parser.parse_args(argv)
    try:
        path = fetch("ppocr_cls")
    except FetchError as exc:
        print(f"cannot fetch PP-OCR cls: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    data = make_dataset(args.images, seed=SEED)
    inst = instrument(path, provider="cpu", threads=args.threads)
    game = OnnxGame(inst, data.x, data.labels, metric="accuracy")
    total, floor = flops_floor(inst, data.x.shape[1:])
    print(
        f"model       ppocr_cls: {inst.n_units} filters in {len(inst.units.layers)} layers, cpu, "
        f"{args.threads} threads"
    )
    print(f"data        {len(data)} rendered lines, input {list(data.x.shape)}")
    print(
        f"FLOPs       {total / 1e6:.1f} MFLOPs per line (conv + matmul); floor of a per-layer cut {floor:.3f}"
    )
    print(f"load avg    {_load()} (1/5/15 min) on {os.cpu_count()} CPUs before", flush=True)
    if args.end_to_end:
        res = end_to_end(game, inst, data.x)
        est = ", one after the other"
    else:
        res = measure(game, inst, data.x, fraction=args.fraction, verbose=args.verbose)
        est = "" if args.fraction == 1 else f", estimated from {args.fraction:.0%} of each layer"
        est += f"; interleaved in groups of {GROUP}"
    ratio = res["loo"] / res["forward"]
    print(f"load avg    {_load()} after")
    print(
        f"leave-one-out  {res['loo']:8.1f} s  ({inst.n_units} filters + v(all)"
        + (f"; {res['setup']:.1f} s of it in layer setups and first runs" if "setup" in res else "")
        + f"{est})"
    )
    print(f"forward passes {res['forward']:8.1f} s  ({inst.n_units} runs of the original model{est})")
    print(f"ratio          {ratio:8.3f}  (target <= 0.7; FLOPs floor {floor:.3f})")
    if args.check:
        rng = np.random.default_rng(SEED)
        valued = np.flatnonzero(~np.isnan(res["values"]))
        units = np.sort(rng.choice(valued, size=min(args.check, len(valued)), replace=False))
        plain = Game.leave_one_out(game, units)
        same = np.array_equal(plain, res["values"][units])
        print(
            f"check          {len(units)} random filters on the normal path: "
            f"{'equal' if same else 'DIFFERENT'} values"
        )
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
