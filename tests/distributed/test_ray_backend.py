"""The Ray backend on one local Ray instance (2 CPUs, loopback only) shared by the module's tests."""

from __future__ import annotations

import json
import logging
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# Before Ray is imported: bind every Ray process to 127.0.0.1 (Ray's single-machine mode), no telemetry.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")

from onnxshap import estimate  # noqa: E402
from onnxshap.distributed.ray_executor import RayExecutor  # noqa: E402
from onnxshap.estimators.checkpoint import load_checkpoint  # noqa: E402
from onnxshap.games.base import Game  # noqa: E402
from onnxshap.results import ShapleyResult  # noqa: E402
from tests.killing import kill_after_first_checkpoint  # noqa: E402

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
FIELDS = ("values", "ci_low", "ci_high", "samples", "top_k")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module: 2 CPUs, no dashboard, loopback only."""
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors unpickle DieOnce by value
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def games():
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_test.npz") as npz:
        x, y = npz["x"], npz["y"]
    return {metric: OnnxGame(inst, x, y, metric=metric) for metric in ("accuracy", "per-class")}


def same(a: ShapleyResult, b: ShapleyResult) -> bool:
    arrays = all(
        np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True)
        for f in FIELDS
        if getattr(a, f) is not None
    )
    return arrays and a.evaluations == b.evaluations


RUNS = {
    "permutation": {"n_permutations": 8, "permutations_per_round": 8},
    "truncated": {"n_permutations": 8, "permutations_per_round": 8},
    "tmab": {"top_k": 5, "max_evals": 700, "permutations_per_round": 8},
}


def test_values_do_not_depend_on_the_number_of_workers(cluster, games) -> None:
    """1, 2 and 8 workers give bit-identical results; scalar games also equal the local backend's."""
    runs: dict[tuple[str, str], list[ShapleyResult]] = {}
    for workers in (1, 2, 8):
        with RayExecutor(workers=workers, chunk_size=1) as ex:  # one permutation per task
            for metric, game in games.items():
                for method, kw in RUNS.items():
                    res = estimate(game, method, seed=1, images=16, progress=False, backend=ex, **kw)
                    assert res.metadata["backend"] == "ray" and res.metadata["workers"] == workers
                    runs.setdefault((metric, method), []).append(res)
            assert ex.replaced == 0
    for (metric, method), results in runs.items():
        assert all(same(results[0], r) for r in results[1:]), (metric, method)
        local = estimate(games[metric], method, seed=1, images=16, progress=False, **RUNS[method])
        assert results[0].evaluations == local.evaluations
        if metric == "accuracy":
            assert same(results[0], local), method
        else:  # vector games: chunk moments are merged, equal to the local values up to rounding
            np.testing.assert_allclose(results[0].values, local.values, rtol=0, atol=1e-12)


class DieOnce(Game):
    """Wraps a game: the first worker process to reach its 3rd call exits at once (a crash mid-walk)."""

    def __init__(self, base: Game, claim: Path) -> None:
        kw = {"value_shape": base.value_shape, "value_range": base.value_range, "batch_size": 32}
        super().__init__(base.n_players, **kw)  # several calls per chunk: the crash is mid-chunk
        self.base, self.claim, self.driver, self.calls = base, str(claim), os.getpid(), 0

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        if os.getpid() != self.driver:
            self.calls += 1
            if self.calls == 3:
                try:
                    os.close(os.open(self.claim, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)
        return self.base(coalitions)


def test_a_dead_worker_has_its_permutations_walked_by_another(cluster, games, tmp_path: Path) -> None:
    with np.load(MODELS / "digits_test.npz") as npz:
        small = games["accuracy"].with_data(npz["x"][:64], npz["y"][:64], None)
    game = DieOnce(small, tmp_path / "died")
    kw = {"n_permutations": 8, "permutations_per_round": 8, "seed": 2, "progress": False}
    expected = estimate(game, "permutation", **kw)  # in this process: never dies
    with RayExecutor(workers=2, chunk_size=2) as ex:
        res = estimate(game, "permutation", backend=ex, **kw)
        assert (tmp_path / "died").exists() and ex.replaced == 1
        assert res.metadata["ray"]["replaced_workers"] == 1
        assert same(res, expected)
        ray.kill(ex.actors[0])  # killed from outside between runs: replaced at the next round
        again = estimate(game, "tmab", backend=ex, top_k=3, max_evals=600, seed=2, progress=False)
        assert ex.replaced == 2
    assert same(again, estimate(game, "tmab", top_k=3, max_evals=600, seed=2, progress=False))


DRIVER = """
import sys
import numpy as np
from onnxshap import estimate, instrument
from onnxshap.games.onnx_game import OnnxGame

ADDRESS, CKPT, OUT, MODEL, DATA = sys.argv[1:6]
inst = instrument(MODEL, provider="cpu")
data = np.load(DATA)
game = OnnxGame(inst, data["x"], data["y"])
res = estimate(game, "tmab", top_k=5, seed=4, images=24, max_evals=5000, permutations_per_round=4,
               checkpoint_dir=CKPT, checkpoint_every_evals=150, checkpoint_every_seconds=None,
               progress=False, backend="ray", address=ADDRESS, workers=2)
res.save(OUT)
"""


def test_killing_the_driver_and_resuming_loses_nothing(cluster, games, tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    ckpt, out = tmp_path / "ckpt", tmp_path / "result"
    args = [str(ckpt), str(out), str(MODELS / "digits_cnn_torch.onnx"), str(MODELS / "digits_test.npz")]
    kill_after_first_checkpoint([str(script), cluster, *args], ckpt, timeout=120, settle=0.3)
    assert not out.with_suffix(".npz").exists(), "the run finished before it was killed"
    _, _, state = load_checkpoint(ckpt)
    assert 0 < state["evaluations"] < 5000

    common = {"top_k": 5, "seed": 4, "images": 24, "max_evals": 5000, "permutations_per_round": 4}
    with RayExecutor(workers=2) as ex:
        resumed = estimate(
            games["accuracy"], "tmab", checkpoint_dir=ckpt, resume=True, progress=False, backend=ex, **common
        )
        straight = estimate(games["accuracy"], "tmab", progress=False, backend=ex, **common)
    assert same(resumed, straight)
    assert resumed.metadata["rounds"] == straight.metadata["rounds"]


def test_cli_run_with_the_ray_backend(cluster, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from onnxshap_cli.main import cli

    out = tmp_path / "run"
    args = ["run", str(MODELS / "digits_cnn_torch.onnx"), "--out", str(out), "--no-baselines"]
    args += ["--estimator", "truncated", "--max-evals", "400", "--images", "24", "--top-k", "5"]
    result = CliRunner().invoke(cli, [*args, "--backend", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["backend"] == "ray" and run["workers"] == 2
    assert run["config"]["backend"] == "ray" and run["config"]["workers"] == 2
    assert run["estimator_metadata"]["ray"]["replaced_workers"] == 0
