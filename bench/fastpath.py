"""What each part of the fast path saves per coalition, measured side by side in one process.

    python -m bench.fastpath [--provider cpu|cuda] [--repeats 5] [--no-thirdparty]

Per scenario (a model, a data batch, and which layers are analysed), the same random coalitions are
evaluated by each variant, the variants interleaved round by round; the median time per coalition of
each, and its ratio to the plain path, are printed:

  plain     ``inst.evaluate``: the whole instrumented model, inputs passed with every run
  bound     fast path without cut or reduction, one coalition per run: the batch bound once through
            IOBinding, masks written in place (what IOBinding alone gives)
  +cut      and the layers before the first mask run once per batch instead of per coalition
  +reduce   and the metric's reduction in the graph (argmax: classes instead of logits)
  +stack    and coalitions stacked along the batch, sized automatically (the chosen size is printed)

"last layers" scenarios analyse only the last few unit layers (``exclude`` the others): the prefix
before them runs once per batch, which is where the cut pays most. The models are the committed digits
fixtures and, unless --no-thirdparty, rapidocr's PP-OCR cls (fetched from PyPI into .cache/).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxshap import instrument

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "bound", "+cut", "+reduce", "+stack")


@dataclass
class Scenario:
    name: str
    model: Path
    x: np.ndarray
    keep_last: int | None = None  # analyse only the last N unit layers
    coalitions: int = 64


def time_interleaved(runners: dict[str, Callable], coal: np.ndarray, repeats: int) -> dict[str, float]:
    """Median seconds per coalition of each runner on `coal`, the runners interleaved round by round
    (forwards, then backwards) so that load changes hit them alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            runners[name](coal)
            times[name].append((time.perf_counter() - start) / len(coal))
    return {name: statistics.median(t) for name, t in times.items()}


def exclude_all_but_last(model: Path, n: int) -> str:
    """A regular expression that leaves out every unit layer but the last `n`."""
    layers = [layer.layer for layer in instrument(model, provider="cpu").units.layers]
    return "^(" + "|".join(re.escape(name) for name in layers[:-n]) + ")$"


def scenarios(thirdparty: bool) -> list[Scenario]:
    with np.load(ROOT / "models" / "digits_test.npz") as npz:
        digits = npz["x"][:128]
    out = [
        Scenario(
            "digits_cnn (all layers)", ROOT / "models" / "digits_cnn_torch.onnx", digits, coalitions=256
        ),
        Scenario("digits_cnn (last layer)", ROOT / "models" / "digits_cnn_torch.onnx", digits, 1, 256),
        Scenario("digits_resnet (all)", ROOT / "models" / "digits_resnet_torch.onnx", digits, coalitions=128),
        Scenario("digits_resnet (last 2)", ROOT / "models" / "digits_resnet_torch.onnx", digits, 2, 128),
    ]
    if thirdparty:
        from models.thirdparty import FetchError, fetch

        try:
            path = fetch("ppocr_cls")
        except FetchError as exc:
            print(f"(skipping PP-OCR cls: {exc})")
            return out
        from models.textlines import make_dataset

        x = make_dataset(32, seed=0).inputs["x"]
        out += [
            Scenario("ppocr_cls (all, 32 lines)", path, x, coalitions=12),
            Scenario("ppocr_cls (last 4, 32 lines)", path, x, 4, 24),
        ]
    return out


def run_scenario(sc: Scenario, provider: str, repeats: int) -> dict[str, float]:
    """Median seconds per coalition of each variant, and the stack the last one chose."""
    exclude = exclude_all_but_last(sc.model, sc.keep_last) if sc.keep_last else None
    inst = instrument(sc.model, provider=provider, exclude=exclude)
    feeds = inst.bind(sc.x)
    out = inst.evaluator.output_names[0]
    coal = np.random.default_rng(0).random((sc.coalitions, inst.n_units)) < 0.5
    paths = {
        "bound": inst.fast_path(out, None, cut=False, stack=1),
        "+cut": inst.fast_path(out, None, cut=True, stack=1),
        "+reduce": inst.fast_path(out, "argmax", cut=True, stack=1),
        "+stack": inst.fast_path(out, "argmax", cut=True, stack=None),
    }
    bound = {name: path.bind(feeds) for name, path in paths.items()}
    runners = {"plain": lambda c: inst.evaluate(c, feeds, outputs=[out])[out]}
    runners.update({name: b.evaluate for name, b in bound.items()})
    ref = runners["plain"](coal[:4]).argmax(-1)
    for name, fn in runners.items():  # warm-up (and the stack tuning) outside the timed rounds
        got = fn(coal[:16])
        classes = got if got.dtype.kind == "i" else got.argmax(-1)
        assert np.array_equal(classes[:4], ref), f"{name} disagrees with the plain path"
    result = time_interleaved(runners, coal, repeats)
    result["stack"] = float(paths["+stack"].describe().stack or 0)
    result["prefix_ops"] = float(paths["+cut"].describe().prefix_ops)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-thirdparty", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"provider {args.provider}; load average {os.getloadavg()[0]:.2f}; ms per coalition (ratio to plain)"
    )
    head = f"{'scenario':<30}" + "".join(f"{v:>16}" for v in VARIANTS) + f"{'stack':>7}{'prefix ops':>12}"
    print(head)
    for sc in scenarios(not args.no_thirdparty):
        res = run_scenario(sc, args.provider, args.repeats)
        cells = "".join(f"{res[v] * 1e3:>8.3f} ({res['plain'] / res[v]:>4.2f}x)".rjust(16) for v in VARIANTS)
        print(f"{sc.name:<30}{cells}{int(res['stack']):>7}{int(res['prefix_ops']):>12}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
