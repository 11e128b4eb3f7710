"""The MSA paper's three settings on onnxshap's own fixtures (models/build_msa_fixtures.py), end to end.

    python bench/msa_settings.py [--permutations P] [--out DIR] [--only mlp|generator|moe]

(a) MLP classifier trained with and without weight decay: per-class modes (``--metric per-class``, dense
    units of the two hidden layers) and the share of the summed value held by the top 5% of units.
(b) DCGAN-like generator: per-pixel modes (``--metric mean-output`` on the generated 8x8 image) of the
    ConvTranspose filters; the report draws them as images, by layer.
(c) Mixture-of-experts transformer: the 4 experts as grouped players (``--players groups:...``), per-domain
    modes (``--metric per-group``: accuracy on plain vs upside-down inverted digits), exact values.

Each setting is one `onnxshap run` (the README gives the commands); this script runs the same through the
Python API, writes each run's report and prints the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = ROOT / "models"


def _run(out: Path, **kw):
    from onnxshap.audit import AuditConfig, run_audit
    from onnxshap.report import build_report, load_run

    cfg = AuditConfig(out=out, progress=False, baselines=False, **kw)
    t = time.perf_counter()
    run_audit(cfg)
    build_report(out, pictures=False)
    return load_run(out), time.perf_counter() - t


def mlp(base: Path, permutations: int) -> None:
    from onnxshap.report.figures import hub_share

    print("(a) MLP on digits, per-class modes, 96 hidden units (fc1 64 + fc2 32), "
          f"permutation sampling, {permutations} permutations")  # fmt: skip
    print(
        f"{'model':<14} {'v(all) mean':>11} {'top 5% share':>13} {'top unit':>18} {'seconds':>8}  per-class top unit"
    )
    for name in ("msa_mlp_nowd", "msa_mlp_wd"):
        data, secs = _run(
            base / name,
            model=MODELS / f"{name}.onnx",
            data=MODELS / "msa_digits_flat.npz",
            units="dense",
            exclude="fc3",
            metric="per-class",
            estimator="permutation",
            images=None,
            extra={"n_permutations": permutations},
        )
        k, share = hub_share(data)
        modes = data.modes.reshape(len(data.modes), -1)
        per_class = [
            data.players.names[int(np.argmax(modes[:, c]))].replace("/Gemm", "").lstrip("/")
            for c in range(modes.shape[1])
        ]
        v_all = float(np.mean(data.info["v_all"]))
        print(
            f"{name:<14} {v_all:>11.3f} {100 * share:>12.1f}% {data.rows[0].unit:>18} {secs:>8.1f}  "
            + " ".join(f"{c}:{u}" for c, u in enumerate(per_class))
        )
        print(f"{'':<14} report: {base / name / 'report.html'} (top {k} units)")


def generator(base: Path, permutations: int, model: Path = MODELS / "msa_generator.onnx",
              codes: Path = MODELS / "msa_codes.npz") -> None:  # fmt: skip
    """Per-pixel modes of a generator's ConvTranspose filters: mass and top unit per layer."""
    print(
        f"(b) generator {model.name}, per-pixel modes of its ConvTranspose filters, {permutations} permutations"
    )
    data, secs = _run(
        base / "generator",
        model=model,
        data=codes,
        exclude="/out/",
        metric="mean-output",
        estimator="permutation",
        images=None,
        split=0.0,
        extra={"n_permutations": permutations},
    )
    modes = data.modes.reshape(len(data.modes), 8, 8)
    print(f"{'layer':<22} {'units':>5} {'summed |mode|':>14} {'top unit':>24} {'its brightest pixel':>20}")
    for layer in data.units.layers:
        rows = [r for r in data.rows if r.layer == layer.layer]
        mass = float(sum(np.abs(modes[r.index]).sum() for r in rows))
        top = rows[0]
        y, x = np.unravel_index(int(np.argmax(modes[top.index])), (8, 8))
        print(f"{layer.layer:<22} {len(rows):>5} {mass:>14.3f} {top.unit:>24} {f'row {y}, col {x}':>20}")
    print(f"{secs:.1f} s; pixel maps: {base / 'generator' / 'figures' / 'mode_images.png'}")


def moe(
    base: Path, model: Path = MODELS / "msa_moe.onnx", data_path: Path = MODELS / "msa_moe_domains.npz"
) -> None:
    """Experts as grouped players, exact per-domain values: the expert-by-domain table."""
    print(
        f"(c) mixture-of-experts transformer {model.name}, experts as grouped players, per-domain accuracy, exact"
    )
    data, secs = _run(
        base / "moe",
        model=model,
        data=data_path,
        units="dense",
        metric="per-group",
        estimator="exact",
        players=f"groups:{model.with_name(model.stem + '_experts.json')}",
    )
    modes = data.modes.reshape(len(data.modes), -1)
    v_all = np.asarray(data.info["v_all"])
    print(f"v(all): plain {v_all[0]:.3f}, upside-down inverted {v_all[1]:.3f}; {secs:.1f} s")
    print(f"{'expert':<10} {'plain digits':>13} {'upside-down inverted':>21}")
    for i, name in enumerate(data.players.names):
        print(f"{name:<10} {modes[i, 0]:>13.3f} {modes[i, 1]:>21.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=30)
    parser.add_argument(
        "--out", type=Path, default=None, help="where the run folders go (default: a temp dir)"
    )
    parser.add_argument("--only", choices=["mlp", "generator", "moe"], default=None)
    args = parser.parse_args(argv)
    base = args.out or Path(tempfile.mkdtemp(prefix="msa_settings_"))
    print(f"python bench/msa_settings.py --permutations {args.permutations}   (run folders in {base})")
    if args.only in (None, "mlp"):
        mlp(base, args.permutations)
    if args.only in (None, "generator"):
        generator(base, args.permutations)
    if args.only in (None, "moe"):
        moe(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
