"""The GPU path side by side with the CPU: coalitions per second and what each CUDA setting gives.

    python -m bench.gpu [--repeats 5] [--no-thirdparty]

Needs onnxruntime-gpu (``pip install -e ".[gpu]"``, after uninstalling onnxruntime) and an NVIDIA GPU;
without them it says so and exits 0. Per scenario of ``bench.fastpath`` (digits fixtures, PP-OCR cls, all
layers or only the last ones), the same random coalitions are evaluated by, interleaved round by round:

  cpu plain         the whole instrumented model on the CPU, one coalition per run
  cuda plain        the same on CUDA (inputs copied to the device every run)
  cuda fast         fast path: batch bound on the device, cut, in-graph argmax, stack sized automatically
  cuda heuristic    the same with cudnn_conv_algo_search=HEURISTIC instead of onnxshap's EXHAUSTIVE
  cuda graph        fast path with enable_cuda_graph=1 (one coalition per run, replayed graph)

and the median milliseconds per coalition and the speed-up over ``cpu plain`` are printed. A variant
the model does not allow (e.g. a CUDA graph when some node falls back to the CPU) prints its one-line error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fastpath import Scenario, exclude_all_but_last, scenarios, time_interleaved
from onnxshap import instrument
from onnxshap.errors import OnnxShapError

VARIANTS = ("cpu plain", "cuda plain", "cuda fast", "cuda heuristic", "cuda graph")


def cuda_missing() -> str | None:
    """Why CUDA cannot be benchmarked here, or None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)"
    try:
        inst = instrument(
            Path(__file__).resolve().parents[1] / "models" / "digits_cnn_torch.onnx", provider="cuda"
        )
        if inst.provider != "cuda":
            return "the CUDA execution provider did not start"
    except OnnxShapError as exc:
        return str(exc)
    return None


def _runner(sc: Scenario, variant: str) -> Callable[[np.ndarray], np.ndarray]:
    exclude = exclude_all_but_last(sc.model, sc.keep_last) if sc.keep_last else None
    options = {
        "cuda heuristic": {"cudnn_conv_algo_search": "HEURISTIC"},
        "cuda graph": {"enable_cuda_graph": "1"},
    }.get(variant)
    provider = "cpu" if variant == "cpu plain" else "cuda"
    inst = instrument(sc.model, provider=provider, exclude=exclude, provider_options=options)
    feeds = inst.bind(sc.x)
    out = inst.evaluator.output_names[0]
    if variant.endswith("plain"):
        return lambda c: inst.evaluate(c, feeds, outputs=[out])[out].argmax(-1)
    return inst.fast_path(out, "argmax", stack=1 if variant == "cuda graph" else None).bind(feeds).evaluate


def run_scenario(sc: Scenario, repeats: int) -> dict[str, float | str]:
    """Median seconds per coalition of each variant (or its one-line error)."""
    exclude = exclude_all_but_last(sc.model, sc.keep_last) if sc.keep_last else None
    n_units = instrument(sc.model, provider="cpu", exclude=exclude).n_units
    coal = np.random.default_rng(0).random((sc.coalitions, n_units)) < 0.5
    runners: dict[str, Callable] = {}
    result: dict[str, float | str] = {}
    ref = None
    for variant in VARIANTS:
        try:
            fn = _runner(sc, variant)
            got = fn(coal[:16])  # warm-up: conv algorithm search, graph capture, stack tuning
        except OnnxShapError as exc:
            result[variant] = f"error: {exc}"
            continue
        ref = got if ref is None else ref
        if not np.array_equal(got[:4], ref[:4]):
            result[variant] = "error: predictions differ from cpu plain"
            continue
        runners[variant] = fn
    result.update(time_interleaved(runners, coal, repeats))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-thirdparty", action="store_true")
    args = parser.parse_args(argv)
    why = cuda_missing()
    if why is not None:
        print(f"bench.gpu: no CUDA here ({why}); nothing to measure")
        return 0
    print("ms per coalition (speed-up over cpu plain)")
    print(f"{'scenario':<30}" + "".join(f"{v:>20}" for v in VARIANTS))
    for sc in scenarios(not args.no_thirdparty):
        res = run_scenario(sc, args.repeats)
        base = res.get("cpu plain")
        cells = []
        for v in VARIANTS:
            val = res.get(v)
            if isinstance(val, float):
                ratio = f" ({base / val:.1f}x)" if isinstance(base, float) else ""
                cells.append(f"{val * 1e3:.3f}{ratio}".rjust(20))
            else:
                cells.append(str(val)[:19].rjust(20))
        print(f"{sc.name:<30}{''.join(cells)}", flush=True)
        for v in VARIANTS:
            if isinstance(res.get(v), str):
                print(f"  {v}: {res[v]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
