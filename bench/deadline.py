"""Does ``--max-seconds T`` bound the whole command on a real model? ``run`` and ``check`` on PP-OCR cls.

    python bench/deadline.py [--T 120 300 900] [--busy] [--lines 256]

PP-OCR's text-direction classifier (3,146 conv filters, fetched by ``models.thirdparty``) on rendered text
lines (``models.textlines``, ``--lines`` of them: half valuation, half held out). For each T, the command is
run as a user would (a subprocess of the installed CLI, interpreter start-up included):
``onnxshap run MODEL --data lines.npz --max-seconds T`` (tmab, baselines on) and
``onnxshap check MODEL --data lines.npz --max-drop 0.5 --drop-k 10 --max-seconds T``. Printed per command:
T, the measured wall seconds, the issue's bound max(1.05 T, T + 10 s), whether it held, the exit code, and
from run.json the plan (estimation budget, seconds per phase, what was skipped). ``--busy`` starts two
processes that keep both cores busy for the whole bench.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import textlines
from models.thirdparty import fetch
from onnxshap.audit.runfolder import RunFolder


def _burn() -> None:
    while True:
        pass


def _timed(args: list[str]) -> tuple[int, float, str]:
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "onnxshap_cli.main", *args], capture_output=True, text=True)
    return proc.returncode, time.monotonic() - t, proc.stderr


def main(argv: list[str] | None = None) -> int:
    """Run the commands and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=float, nargs="+", default=[120.0, 300.0])
    ap.add_argument("--busy", action="store_true", help="two processes keep both cores busy meanwhile")
    ap.add_argument("--lines", type=int, default=256)
    ap.add_argument("--commands", nargs="+", default=["run", "check"], choices=["run", "check"])
    args = ap.parse_args(argv)
    model = fetch("ppocr_cls")
    burners = []
    if args.busy:
        burners = [multiprocessing.get_context("spawn").Process(target=_burn, daemon=True) for _ in range(2)]
        for p in burners:
            p.start()
    print(f"PP-OCR cls, {args.lines} rendered lines, busy machine: {args.busy}")
    print(
        "| command | T (s) | wall (s) | bound (s) | held | exit | estimation budget (s) | phases (s) | skipped |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---|---|")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = textlines.write_npz(Path(tmp) / "lines.npz", n=args.lines, seed=0)
            for T in args.T:
                for command in args.commands:
                    out = Path(tmp) / f"{command}-{T:g}"
                    cli = [
                        command,
                        str(model),
                        "--data",
                        str(data),
                        "--max-seconds",
                        f"{T:g}",
                        "--out",
                        str(out),
                    ]
                    if command == "check":
                        cli += ["--max-drop", "0.5", "--drop-k", "10"]
                    code, wall, _ = _timed(cli)
                    bound = max(1.05 * T, T + 10)
                    run = RunFolder(out)
                    info = run.read_run() if run.run_json.is_file() else {}
                    plan = info.get("plan", {})
                    phases = ", ".join(f"{k} {v:.0f}" for k, v in plan.get("seconds", {}).items() if v >= 0.5)
                    skipped = "; ".join(plan.get("skipped", {})) or "-"
                    print(
                        f"| {command} | {T:g} | {wall:.1f} | {bound:.0f} | {'yes' if wall <= bound else 'NO'} | "
                        f"{code} | {plan.get('budgets', {}).get('estimation', float('nan')):.0f} | {phases} | "
                        f"{skipped} |",
                        flush=True,
                    )
    finally:
        for p in burners:
            p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
