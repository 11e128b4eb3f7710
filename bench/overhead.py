"""Latency of the instrumented model (all masks at 1) over the original, timed alternately in one process.

    python -m bench.overhead [--rounds 200] [--no-thirdparty]

Prints, per model and placement, the median latencies and their ratio (target <= 1.05 for after-chain on CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from onnxshap import instrument
from onnxshap.runtime.session import input_metas

ROOT = Path(__file__).resolve().parents[1]


def _fixtures() -> list[tuple[str, Path, np.ndarray]]:
    out = []
    for entry in json.loads((ROOT / "models" / "fixtures.json").read_text()):
        with np.load(ROOT / "models" / entry["data"]) as npz:
            out.append((entry["name"], ROOT / "models" / entry["file"], npz["x"][:64]))
    return out


def _thirdparty() -> list[tuple[str, Path, np.ndarray]]:
    from models.thirdparty import FetchError, fetch

    try:
        path = fetch("ppocr_cls")
    except FetchError as exc:
        print(f"(skipping PP-OCR cls: {exc})")
        return []
    x = np.random.default_rng(0).random((8, 3, 48, 192), dtype=np.float32)
    return [("ppocr_cls (batch 8)", path, x)]


def measure(path: Path, x: np.ndarray, placement: str, rounds: int) -> tuple[float, float]:
    """Median seconds per run of (original, instrumented) on the same batch, alternating order."""
    inst = instrument(path, placement=placement, provider="cpu")
    masked = inst.evaluator
    inst.run_original(x)
    orig = inst._original.session
    input_name = input_metas(orig)[0].name
    feeds = {input_name: x}
    masked_feeds = {**feeds, **masked.masks_for(np.ones((1, inst.n_units), bool))}
    outs = [o.name for o in orig.get_outputs()]
    for _ in range(5):  # warm-up
        orig.run(outs, feeds)
        masked.session.run(outs, masked_feeds)
    t_orig, t_mask = [], []
    for i in range(rounds):
        pair = [(orig, feeds, t_orig), (masked.session, masked_feeds, t_mask)]
        for sess, f, bucket in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            sess.run(outs, f)
            bucket.append(time.perf_counter() - start)
    return statistics.median(t_orig), statistics.median(t_mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--no-thirdparty", action="store_true")
    args = parser.parse_args()
    models = _fixtures() + ([] if args.no_thirdparty else _thirdparty())
    print(f"{'model':<24} {'placement':<12} {'original ms':>12} {'masked ms':>10} {'ratio':>7}")
    for name, path, x in models:
        rounds = args.rounds if x.size < 100_000 else max(20, args.rounds // 5)
        for placement in ("after-chain", "after-conv"):
            t_o, t_m = measure(path, x, placement, rounds)
            print(f"{name:<24} {placement:<12} {t_o * 1e3:>12.3f} {t_m * 1e3:>10.3f} {t_m / t_o:>7.3f}")


if __name__ == "__main__":
    main()
