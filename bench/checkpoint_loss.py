"""How much work does ``kill -9`` lose? ``onnxshap run`` on a real model, killed at random times.

    python bench/checkpoint_loss.py [--model ppocr_cls] [--checkpoint-seconds 20] [--kills 60 150 240]

The model (fetched by ``models.thirdparty``: ppocr_cls on rendered text lines, ppocr_rec on rendered
words with ``--metric ctc``) is audited by tmab as a user would (a subprocess of the CLI, no baselines)
and killed with SIGKILL after each of ``--kills`` seconds (a fresh run each time). Printed per kill: the
seconds since the last checkpoint was written (the work lost, which ``--checkpoint-seconds`` bounds), whether
that checkpoint lies inside a round of permutations (its complete pieces kept), the evaluations it holds,
and whether ``--resume`` then continues from it (exit code of a resumed run given 60 s).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import textlines, textlines_rec
from models.thirdparty import fetch
from onnxshap.estimators.checkpoint import checkpoint_path, load_checkpoint
from onnxshap.metrics.ctc import paddle_charset

SETTINGS = {  # name: (write the data next to a path, for the model; metric; further options)
    "ppocr_cls": (lambda path, _: textlines.write_npz(path, n=256, seed=0), "accuracy", []),
    "ppocr_rec": (
        lambda path, model: textlines_rec.write_npz(path, n=128, seed=0, charset=paddle_charset(model)),
        "ctc",
        ["--images", "64"],
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Kill runs and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SETTINGS), default="ppocr_cls")
    ap.add_argument("--checkpoint-seconds", type=float, default=20.0)
    ap.add_argument("--kills", type=float, nargs="+", default=[60.0, 150.0, 240.0])
    args = ap.parse_args(argv)
    model = fetch(args.model)
    write, metric, extra = SETTINGS[args.model]
    print(f"{args.model} ({metric}), tmab, --checkpoint-seconds {args.checkpoint_seconds:g}, kill -9 at:")
    print(
        "| killed at (s) | lost (s since last checkpoint) | inside a round | evaluations kept | resume exit |"
    )
    print("|---:|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        data = write(Path(tmp) / "data.npz", model)
        for kill_at in args.kills:
            out = Path(tmp) / f"run-{kill_at:g}"
            cli = [sys.executable, "-m", "onnxshap_cli.main", "run", str(model), "--data", str(data)]
            cli += ["--metric", metric, "--out", str(out), "--no-baselines", "--no-progress"]
            cli += ["--checkpoint-seconds", f"{args.checkpoint_seconds:g}", *extra]
            proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(kill_at)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = time.time()
            ckpt = checkpoint_path(out / "checkpoint")
            if not ckpt.exists():
                print(f"| {kill_at:g} | no checkpoint yet | - | - | - |", flush=True)
                continue
            lost = killed - ckpt.stat().st_mtime
            _, _, state = load_checkpoint(out / "checkpoint")
            inside = int(state.get("round_stop", -1)) >= 0
            evals = int(state["evaluations"])
            resumed = subprocess.run(
                [*cli, "--resume", "--max-seconds", "60"], capture_output=True, text=True
            )
            print(f"| {kill_at:g} | {lost:.1f} | {inside} | {evals} | {resumed.returncode} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
