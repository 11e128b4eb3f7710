"""`onnxshap interactions RUN_DIR`: pairwise interactions among a finished run's top players.

Adds interactions.csv (unit_i, unit_j, value, ci_low, ci_high) and interactions.json (method, budget,
guarantee) to the run folder; an existing interactions.csv is never overwritten. The game is rebuilt from
the run's record; a custom metric recorded there is not imported unless the user names it again.
"""

from __future__ import annotations

import csv
import io
import os

from onnxshap.audit.runfolder import RunFolder, RunFolderError
from onnxshap.errors import DataError
from onnxshap.fileio import atomic_write_bytes

MAX_TOP = 30
INTERACTION_COLUMNS = ("unit_i", "unit_j", "value", "ci_low", "ci_high")


def run_interactions(
    run_dir: str | os.PathLike,
    top: int = 10,
    method: str = "sampled",
    permutations: int = 100,
    images: int | None = None,
    seed: int = 0,
    delta: float = 0.05,
    metric: str | None = None,
    provider: str = "cpu",
):
    """Compute and write the interactions of the run's top ``top`` players (see onnxshap.interactions)."""
    from onnxshap.audit.runner import config_from_run, reopen
    from onnxshap.interactions import pair_interactions

    folder = RunFolder(run_dir)
    run = folder.read_run()
    if run.get("status") != "finished":
        raise RunFolderError(f"{folder.path} holds no finished run")
    out_csv = folder.interactions_csv
    if out_csv.exists():
        raise RunFolderError(f"{out_csv} exists (a run folder is never overwritten); delete it to recompute")
    if not 2 <= top <= MAX_TOP:
        raise DataError(f"--top must lie in [2, {MAX_TOP}] (pairs grow as top^2)")
    recorded = str(run.get("metric"))
    if recorded.startswith("custom:"):
        if metric != recorded:
            raise DataError(
                f"this run's metric is your own code ({recorded}); reading a run folder never runs code: "
                f"pass --metric {recorded} to run it"
            )
    elif metric is not None and metric != recorded:
        raise DataError(f"--metric {metric} differs from the run's metric {recorded}")
    cfg = config_from_run(run)
    players = folder.load_players()
    rows = folder.read_csv()
    names = [r["unit"] for r in rows[:top]]
    if len(names) < 2:
        raise DataError("the run has fewer than 2 players")
    _, unit_game, _ = reopen(folder, cfg, provider=provider).games()
    game = players.wrap(unit_game)
    result = pair_interactions(
        game,
        [players.index_of(n) for n in names],
        method=method,
        n_permutations=permutations,
        images=images if images is not None else cfg.images,
        seed=seed,
        delta=delta,
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(INTERACTION_COLUMNS)
    for (a, b), v, lo, hi in zip(result.pairs, result.values, result.ci_low, result.ci_high, strict=True):
        writer.writerow([names[a], names[b], repr(float(v)), repr(float(lo)), repr(float(hi))])
    data = buf.getvalue().encode()
    folder.write_json(
        folder.interactions_json,
        {
            **result.metadata,
            "quantity": "Shapley interaction index = msapy network_interaction_2d (gamma_ij - gamma_i - gamma_j)",
            "players": names,
            "evaluations": result.evaluations,
            "metric": recorded,
        },
    )
    atomic_write_bytes(out_csv, lambda fh: fh.write(data))
    return out_csv, result, names
