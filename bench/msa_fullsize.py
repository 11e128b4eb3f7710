"""The MSA paper's three settings at full size: a weight-decay sweep of wider MLPs (hub concentration), a
wider generator (per-pixel modes) and a wider mixture of experts (8 experts, per-domain values).

    python bench/msa_fullsize.py [--settings mlp generator moe] [--hidden 256 128]
                                 [--decays 0 1e-2 3e-2] [--seeds 0 1 2] [--permutations 200]
                                 (needs torch: pip install -e ".[torch]")

The CI fixtures (``models/msa_mlp_{nowd,wd}.onnx``, 96 hidden units) are small on purpose. Here the same
setting is built at full size: an MLP 64 -> H1 -> H2 -> 10 (ReLU) trained on scikit-learn's digits with Adam
and an L2 penalty of each strength in ``--decays`` (coupled weight decay, the classic regulariser; each
model from each training seed in ``--seeds``), exported to ONNX with ``torch.onnx`` into the ignored
``.cache/msa_fullsize/``, and audited through onnxshap's API as ``onnxshap run MODEL --units dense
--exclude fc3 --metric per-class --estimator permutation`` would (the H1 + H2 hidden units are the players,
per-class modes, every test digit in every evaluation). Printed per model: the test accuracy, v(all) (mean
per-class accuracy), the share of the summed value held by the top 5% of units (the paper's hub measure,
``onnxshap.report.figures.hub_share``), the top-5% share of the L2 norms of the units' modes (a sign-free
check), the number of units whose mode is nowhere above 0.001 (dead or idle units) and the seconds taken.
Noise in the values biases a top-5% share upwards (the top of noisy values is the noise's top too), so the
sweep uses the same number of permutations everywhere and several training seeds.

The generator (``models/build_msa_fixtures.build_generator`` with channels 128 -> 64 -> 32: 96 ConvTranspose
filters instead of 24) and the MoE (``build_moe`` with width 64, experts of width 128, 8 experts instead of 4;
exact over the 8 experts, 256 coalitions) are built into the same cache and audited as in
``bench/msa_settings.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "msa_fullsize"


def build(hidden: tuple[int, int], decay: float, seed: int, epochs: int) -> tuple[Path, Path, float]:
    """Train and export one MLP; returns (model, data, test accuracy)."""
    import warnings

    import torch
    from torch import nn

    from models.build_fixtures import load_split

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.onnx's legacy exporter, on purpose

    split = load_split(0)
    x_tr = torch.from_numpy(split.x_train.reshape(len(split.x_train), -1))
    y_tr = torch.from_numpy(split.y_train.astype(np.int64))
    x_te = split.x_test.reshape(len(split.x_test), -1).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    data = CACHE / "digits_flat.npz"
    np.savez_compressed(data, x=x_te, y=split.y_test.astype(np.int64))
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(64, hidden[0]))
    model.add_module("relu1", nn.ReLU())
    model.add_module("fc2", nn.Linear(hidden[0], hidden[1]))
    model.add_module("relu2", nn.ReLU())
    model.add_module("fc3", nn.Linear(hidden[1], 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=decay)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x_tr), generator=gen)
        for start in range(0, len(x_tr), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_te)).argmax(1).numpy() == split.y_test).mean())
    path = CACHE / f"mlp_{hidden[0]}x{hidden[1]}_wd{decay:g}_seed{seed}.onnx"
    torch.onnx.export(
        model, (torch.from_numpy(x_te[:2]),), str(path), input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path, data, accuracy


def audit(model: Path, data: Path, permutations: int, out: Path) -> dict[str, float]:
    """Per-class permutation sampling of the hidden units; the hub figures."""
    from onnxshap.audit import AuditConfig, run_audit
    from onnxshap.report import load_run
    from onnxshap.report.figures import hub_share

    cfg = AuditConfig(
        model=model, data=data, out=out, units="dense", exclude="fc3", metric="per-class",
        estimator="permutation", images=None, split=0.0, baselines=False, progress=False,
        extra={"n_permutations": permutations},
    )  # fmt: skip
    t0 = time.perf_counter()
    run_audit(cfg)
    seconds = time.perf_counter() - t0
    run = load_run(out)
    shared = hub_share(run)
    norms = np.linalg.norm(run.modes.reshape(len(run.modes), -1), axis=1)
    k = max(1, int(np.ceil(0.05 * len(norms))))
    return {
        "units": len(norms),
        "v_all": float(np.mean(run.info["v_all"])),
        "share": float("nan") if shared is None else shared[1],
        "norm_share": float(np.sort(norms)[::-1][:k].sum() / norms.sum())
        if norms.sum() > 0
        else float("nan"),
        "idle": int((np.abs(run.modes.reshape(len(norms), -1)).max(axis=1) <= 1e-3).sum()),
        "seconds": seconds,
    }


def mlp_sweep(args: argparse.Namespace) -> None:
    """The weight-decay sweep: build, audit and print the table."""
    import tempfile

    hidden = (args.hidden[0], args.hidden[1])
    print(
        f"MLP 64 -> {hidden[0]} -> {hidden[1]} -> 10 on digits, Adam + L2 penalty, {args.epochs} epochs; "
        f"per-class modes of the {sum(hidden)} hidden units, {args.permutations} permutations"
    )
    print("| L2 decay | seed | test accuracy | v(all) | top 5% share of value | top 5% share of mode norms | "
          "idle units | s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    shares: dict[float, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for decay in args.decays:
            for seed in args.seeds:
                model, data, accuracy = build(hidden, decay, seed, args.epochs)
                f = audit(model, data, args.permutations, Path(tmp) / model.stem)
                print(
                    f"| {decay:g} | {seed} | {accuracy:.3f} | {f['v_all']:.3f} | {100 * f['share']:.1f}% | "
                    f"{100 * f['norm_share']:.1f}% | {f['idle']} | {f['seconds']:.0f} |",
                    flush=True,
                )
                shares.setdefault(decay, []).append(f["share"])
    print("\ntop 5% share of value by L2 decay, mean +- standard deviation over training seeds:")
    for decay, values in shares.items():
        if np.isnan(values).any():  # the decay killed the network: every unit's value is 0, no share exists
            print(
                f"  {decay:g}: no share (every unit's value is 0 in {int(np.isnan(values).sum())} of {len(values)} models)"
            )
            continue
        sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
        print(f"  {decay:g}: {100 * np.mean(values):.1f}% +- {100 * sd:.1f}%")


def main(argv: list[str] | None = None) -> int:
    """Build, audit and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--settings", nargs="+", choices=["mlp", "generator", "moe"], default=["mlp", "generator", "moe"]
    )
    ap.add_argument("--hidden", type=int, nargs=2, default=[256, 128])
    ap.add_argument("--decays", type=float, nargs="+", default=[0.0, 1e-2, 3e-2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print('bench/msa_fullsize.py needs torch: pip install -e ".[torch]"', file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    if "mlp" in args.settings:
        mlp_sweep(args)
    if "generator" in args.settings or "moe" in args.settings:
        import tempfile

        import bench.msa_settings as settings
        from models.build_msa_fixtures import build_generator, build_moe

        CACHE.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="msa_fullsize_"))
        if "generator" in args.settings:
            print(build_generator(CACHE, widths=(128, 64, 32), name="generator_full"))
            settings.generator(
                base, args.permutations, CACHE / "generator_full.onnx", CACHE / "msa_codes.npz"
            )
        if "moe" in args.settings:
            print(build_moe(CACHE, d=64, hidden=128, n_experts=8, name="moe_full"))
            settings.moe(base, CACHE / "moe_full.onnx", CACHE / "msa_moe_domains.npz")
        print(f"run folders and reports: {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
