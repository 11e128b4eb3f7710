"""Confidence sequences side by side: coverage, width and speed (onnxshap's own vs the PyPI packages).

    python -m bench.confseq                      # 200 seeds x 2,000 samples per stream (a few minutes)
    python -m bench.confseq --quick              # 50 seeds x 500 samples
    python -m bench.confseq --expectation-python /path/to/python3.12   # also the `expectation` package

Streams (samples in [0, 1]; a marginal x in [-1, 1] maps to (x + 1) / 2): Bernoulli(1/2), Bernoulli(0.02),
Beta(2, 5) ("beta 2-5"), "sparse" (a marginal of U(0, 1) with probability 3%, else exactly 0: a tail unit's truncated
samples), "zero" (every marginal exactly 0) and "hub" (a marginal of 0.3 with probability 5%, else 0).

* **miss rate**: share of seeds whose running interval ever excluded the true mean during the stream,
  at alpha = 0.05 (checked after every sample; a valid sequence keeps this <= 0.05 up to sampling noise:
  with 200 seeds the 95% upper end of Binomial(200, 0.05) / 200 is 0.08).
* **width**: mean width of the interval (in units of the [0, 1] range) after t samples, at alpha = 0.05
  and at alpha = 0.05 / 3000 (what one unit of 3,000 gets under the union bound).
* **us/sample**: microseconds per sample per stream (onnxshap's sequences update all seeds at once, as
  they update all units of an estimator at once; the packages run one stream at a time).

Packages: ``confseq`` (Howard, Waudby-Smith & Ramdas; ``betting_cs`` with its default hedged capital and
1,000 grid breaks, and ``predmix_empbern_twosided_cs``) when it imports (0.0.11 needs
``numpy.float_``, restored here as float64, and builds on Python 3.11 only with pybind11 >= 2.10);
``expectation`` (EmpiricalBernsteinConfidenceSequence, gamma-exponential mixture) requires Python >= 3.12:
pass an interpreter that has it with ``--expectation-python``; it runs in a subprocess on the same streams.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxshap.estimators.confseq import KINDS, make_sequences

Sampler = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def _marginal(x: np.ndarray) -> np.ndarray:
    return (x + 1.0) / 2.0


STREAMS: dict[str, tuple[Sampler, float]] = {
    "bernoulli 0.5": (lambda rng, size: (rng.random(size) < 0.5).astype(float), 0.5),
    "bernoulli 0.02": (lambda rng, size: (rng.random(size) < 0.02).astype(float), 0.02),
    "beta 2-5": (lambda rng, size: rng.beta(2.0, 5.0, size), 2.0 / 7.0),
    "sparse": (
        lambda rng, size: _marginal(np.where(rng.random(size) < 0.03, rng.random(size), 0.0)),
        (1.0 + 0.03 * 0.5) / 2.0,
    ),
    "zero": (lambda rng, size: np.full(size, 0.5), 0.5),
    "hub": (lambda rng, size: _marginal(np.where(rng.random(size) < 0.05, 0.3, 0.0)), (1.0 + 0.015) / 2.0),
}


def checkpoints(t_max: int) -> list[int]:
    """Sample counts at which widths are reported."""
    return [t for t in (10, 100, 1000, 10_000) if t < t_max] + [t_max]


def run_ours(kind: str, x: np.ndarray, mean: float, alpha: float) -> tuple[float, dict[int, float], float]:
    """(miss rate, width at each checkpoint, us per sample per stream) for seeds as units."""
    seeds, t_max = x.shape
    cs = make_sequences(kind, seeds, alpha)
    missed = np.zeros(seeds, dtype=bool)
    widths: dict[int, float] = {}
    marks = set(checkpoints(t_max))
    start = time.perf_counter()
    for t in range(t_max):
        cs.update(x[:, t])
        cs.refresh()
        missed |= (cs.lo > mean) | (cs.hi < mean)
        if t + 1 in marks:
            widths[t + 1] = float(np.mean(cs.hi - cs.lo))
    us = (time.perf_counter() - start) / (seeds * t_max) * 1e6
    return float(missed.mean()), widths, us


def _confseq_module():
    np.float_ = np.float64  # type: ignore[attr-defined]  # confseq 0.0.11 still names it
    try:
        import confseq.betting
        import confseq.predmix

        return confseq
    except ImportError:
        return None


def run_package(
    fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray, mean: float
) -> tuple[float, dict[int, float], float]:
    """The same figures for a function computing one stream's (lower, upper) sequence."""
    seeds, t_max = x.shape
    missed = np.zeros(seeds, dtype=bool)
    marks = checkpoints(t_max)
    w = {t: [] for t in marks}
    start = time.perf_counter()
    for s in range(seeds):
        lo, hi = fn(x[s])
        lo, hi = np.maximum.accumulate(lo), np.minimum.accumulate(hi)
        missed[s] = bool(((lo > mean) | (hi < mean)).any())
        for t in marks:
            w[t].append(hi[t - 1] - lo[t - 1])
    us = (time.perf_counter() - start) / (seeds * t_max) * 1e6
    return float(missed.mean()), {t: float(np.mean(v)) for t, v in w.items()}, us


EXPECTATION_SCRIPT = r"""
import json, sys, time
import numpy as np
from expectation.confseq.confidencesequence import EmpiricalBernsteinConfidenceSequence
from expectation.confseq.confidenceconfig import EmpiricalBernsteinConfig, BoundaryType
data = np.load(sys.argv[1])
alpha = float(sys.argv[2])
out, errors = {}, {}
for key in data.files:
    x = data[key]
    lows, highs = np.zeros_like(x), np.ones_like(x)
    start = time.perf_counter()
    errors[key] = 0
    for s in range(x.shape[0]):
        cfg = EmpiricalBernsteinConfig(alpha=alpha, lower_bound=0.0, upper_bound=1.0,
                                       boundary_type=BoundaryType.GAMMA_EXPONENTIAL)
        seq = EmpiricalBernsteinConfidenceSequence(config=cfg)
        for t in range(x.shape[1]):
            try:
                r = seq.update(x[s, t : t + 1])
            except (RuntimeError, ValueError):  # its root finder fails on some streams: [0, 1] then
                errors[key] += 1
                break
            lows[s, t], highs[s, t] = r.lower, r.upper
    np.save(sys.argv[3] + f"/{key}_lo.npy", lows)
    np.save(sys.argv[3] + f"/{key}_hi.npy", highs)
    out[key] = time.perf_counter() - start
print(json.dumps({"seconds": out, "errors": errors}))
"""


def run_expectation(
    python: str, data: dict[str, np.ndarray], means: dict[str, float], alpha: float
) -> dict[str, tuple[float, dict[int, float], float]]:
    """Run the ``expectation`` package in a Python >= 3.12 subprocess on the same streams."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        keys = {f"s{i}": name for i, name in enumerate(data)}
        np.savez(Path(tmp) / "streams.npz", **{k: data[name] for k, name in keys.items()})
        script = Path(tmp) / "run.py"
        script.write_text(EXPECTATION_SCRIPT)
        proc = subprocess.run(
            [python, str(script), str(Path(tmp) / "streams.npz"), str(alpha), tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"expectation failed: {proc.stderr.strip().splitlines()[-1:]}")
            return {}
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        seconds = doc["seconds"]
        for key, name in keys.items():
            if doc["errors"][key]:
                print(
                    f"expectation: its bound failed (RuntimeError) on {doc['errors'][key]} of "
                    f"{len(data[name])} {name} streams; those count as [0, 1] from the failure on"
                )
            x = data[name]
            lo = np.load(Path(tmp) / f"{key}_lo.npy")
            hi = np.load(Path(tmp) / f"{key}_hi.npy")
            fn_iter = iter(zip(lo, hi, strict=True))
            miss, widths, _ = run_package(lambda _x, it=fn_iter: next(it), x, means[name])
            results[name] = (miss, widths, seconds[key] / x.size * 1e6)
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the table; return 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="50 seeds x 500 samples")
    ap.add_argument(
        "--package-seeds", type=int, default=None, help="seeds for the packages (slow; default 20)"
    )
    ap.add_argument("--expectation-python", default=None, help="a Python >= 3.12 with `expectation`")
    ap.add_argument("--streams", default=",".join(STREAMS), help="comma-separated stream names")
    args = ap.parse_args(argv)
    seeds, t_max = (50, 500) if args.quick else (args.seeds, args.samples)
    pkg_seeds = args.package_seeds or min(seeds, 20)
    names = [s.strip() for s in args.streams.split(",")]
    rng = np.random.default_rng(0)
    data = {name: STREAMS[name][0](rng, (seeds, t_max)) for name in names}
    means = {name: STREAMS[name][1] for name in names}
    cs_pkg = _confseq_module()
    marks = checkpoints(t_max)

    rows: list[tuple[str, str, float, dict[int, float], dict[int, float], float]] = []
    for name in names:
        x, mean = data[name], means[name]
        for kind in KINDS:
            miss, w, us = run_ours(kind, x, mean, 0.05)
            _, w_union, _ = run_ours(kind, x[: min(seeds, 50)], mean, 0.05 / 3000)
            rows.append((name, f"onnxshap {kind}", miss, w, w_union, us))
        if cs_pkg is not None:
            xs = x[:pkg_seeds]
            for label, fn, fn_union in (
                (
                    "confseq betting_cs",
                    lambda v: cs_pkg.betting.betting_cs(v, alpha=0.05, running_intersection=True),
                    lambda v: cs_pkg.betting.betting_cs(v, alpha=0.05 / 3000, running_intersection=True),
                ),
                (
                    "confseq predmix_empbern",
                    lambda v: cs_pkg.predmix.predmix_empbern_twosided_cs(v, alpha=0.05),
                    lambda v: cs_pkg.predmix.predmix_empbern_twosided_cs(v, alpha=0.05 / 3000),
                ),
            ):
                miss, w, us = run_package(fn, xs, mean)
                _, w_union, _ = run_package(fn_union, xs[: min(pkg_seeds, 20)], mean)
                rows.append((name, label, miss, w, w_union, us))
        print(f"  {name} done", file=sys.stderr, flush=True)
    if args.expectation_python:
        exp = run_expectation(
            args.expectation_python, {k: v[:pkg_seeds] for k, v in data.items()}, means, 0.05
        )
        exp_union = run_expectation(
            args.expectation_python, {k: v[: min(pkg_seeds, 20)] for k, v in data.items()}, means, 0.05 / 3000
        )
        for name, (miss, w, us) in exp.items():
            rows.append((name, "expectation EB (gamma-exp)", miss, w, exp_union.get(name, (0, {}, 0))[1], us))
    elif cs_pkg is None:
        print("confseq does not import here; expectation not asked for (--expectation-python)")

    print(
        f"\n{seeds} seeds x {t_max} samples (packages: {pkg_seeds} seeds); miss rate at alpha 0.05 "
        "(<= 0.05 expected); width of the running interval after t samples at alpha 0.05 and 0.05/3000\n"
    )
    head = " | ".join(f"w@{t}" for t in marks) + " | " + " | ".join(f"w@{t} (a/3000)" for t in marks)
    print(f"| stream | sequence | miss rate | {head} | us/sample |")
    print("|---|---|---:|" + "---:|" * (2 * len(marks)) + "---:|")
    for name, label, miss, w, wu, us in rows:
        cells = " | ".join(f"{w.get(t, float('nan')):.4f}" for t in marks)
        cells_u = " | ".join(f"{wu.get(t, float('nan')):.4f}" for t in marks)
        print(f"| {name} | {label} | {miss:.3f} | {cells} | {cells_u} | {us:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
