"""The backend seam without Ray: chunked walks fold to the local result, games pickle, errors are clear."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onnxshap import estimate
from onnxshap.distributed import RAY_MISSING, check_reachable, make_executor
from onnxshap.distributed.chunks import Summary, chunk_bounds, fold_chunk, walk_chunk
from onnxshap.errors import RuntimeSetupError
from onnxshap.estimators import ParameterError
from onnxshap.estimators.api import ESTIMATORS
from onnxshap.estimators.stats import RunningMoments
from onnxshap.games import FewHubsGame

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"


def test_merge_equals_sequential_updates() -> None:
    rng = np.random.default_rng(0)
    x, mask = rng.normal(size=(60, 7, 3)), rng.random((60, 7)) < 0.6
    mask[:, 0] = False  # a player without samples stays at zero
    whole = RunningMoments(7, (3,))
    for i in range(60):
        whole.update(x[i], mask[i])
    merged = RunningMoments(7, (3,))
    for lo, hi in ((0, 1), (1, 20), (20, 20), (20, 60)):
        part = RunningMoments(7, (3,))
        for i in range(lo, hi):
            part.update(x[i], mask[i])
        merged.merge(part)
    assert np.array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=0, atol=1e-14)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-12, atol=1e-13)
    assert np.array_equal(merged.variance()[0], np.full(3, np.nan), equal_nan=True)


def test_chunk_bounds_follow_indices_not_workers() -> None:
    assert chunk_bounds(range(16, 27), 4) == [(16, 20), (20, 24), (24, 27)]
    assert chunk_bounds(range(0, 10), 3, unit=2) == [(0, 4), (4, 8), (8, 10)]  # pairs never split
    assert chunk_bounds(range(5, 6), 4) == [(5, 6)]


class ChunkedExecutor:
    """Walks each round as fixed chunks in this process, folding them like the Ray executor does."""

    name = "chunked"

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk

    def run_round(self, est, indices: range) -> int:
        total = 0
        for start, stop in chunk_bounds(indices, self.chunk, est.unit):
            res = walk_chunk(est.game, start, stop, est.walk_options(), Summary.of(est))
            fold_chunk(est, res)
            total += res.evaluations
        return total

    def describe(self) -> dict:
        return {"backend": self.name, "workers": 1}


@pytest.mark.parametrize("per_group", [False, True])
@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("permutation", {"n_permutations": 12, "antithetic": True}),
        ("truncated", {"n_permutations": 12, "images": 40}),
        ("tmab", {"top_k": 3, "max_evals": 3000, "permutations_per_round": 6}),
    ],
)
def test_chunked_rounds_equal_the_local_walk(method: str, kw: dict, per_group: bool) -> None:
    game = FewHubsGame.make(n_players=20, n_hubs=3, n_items=200, seed=1, per_group=per_group)
    local = estimate(game, method, seed=3, progress=False, **kw)
    results = [
        estimate(game, method, seed=3, progress=False, backend=ChunkedExecutor(c), **kw) for c in (1, 4)
    ]
    for res in results:
        assert res.evaluations == local.evaluations
        assert res.metadata["backend"] == "chunked"
        if per_group:  # vector games: chunk moments merged, equal up to rounding
            np.testing.assert_allclose(res.values, local.values, rtol=0, atol=1e-12)
        else:  # scalar games: per-permutation marginals, bit for bit
            assert np.array_equal(res.values, local.values)
            assert np.array_equal(res.ci_low, local.ci_low, equal_nan=True)


def test_onnx_game_pickles_without_its_session() -> None:
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(MODELS / "digits_cnn_torch.onnx", provider="cpu")
    with np.load(MODELS / "digits_test.npz") as npz:
        game = OnnxGame(inst, npz["x"][:64], npz["y"][:64], metric="per-class")
    coal = np.random.default_rng(0).random((6, inst.n_units)) < 0.5
    expected = game(coal)
    copy = pickle.loads(pickle.dumps(game))
    assert copy.inst._evaluator is None or copy.inst._evaluator is not inst._evaluator
    assert np.array_equal(copy(coal), expected)
    rng = np.random.default_rng(5)
    assert np.array_equal(copy.subgame(np.random.default_rng(5), 16)(coal), game.subgame(rng, 16)(coal))


def test_backend_errors() -> None:
    game = FewHubsGame.make(n_players=6, n_hubs=2, n_items=20, seed=0)
    with pytest.raises(ParameterError, match="unknown backend 'dask'; choose one of: local, ray"):
        estimate(game, "permutation", backend="dask", progress=False)
    with pytest.raises(ParameterError, match="workers must be an integer >= 1"):
        estimate(game, "permutation", backend="ray", workers=0, progress=False)
    with pytest.raises(ParameterError, match="options of backend 'ray'"):
        estimate(game, "permutation", workers=2, progress=False)
    with pytest.raises(ParameterError, match="method='exact' runs with backend='local'"):
        estimate(game, "exact", backend="ray", progress=False)
    assert make_executor("local") is None


def test_unreachable_address_is_one_line(tmp_path: Path) -> None:
    """Nothing listens on port 1 of the loopback: refused at once, before the run folder is made."""
    pytest.importorskip("ray")
    with pytest.raises(RuntimeSetupError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        check_reachable("127.0.0.1:1")
    with pytest.raises(ParameterError, match="address must be auto or HOST:PORT"):
        check_reachable("clusterhead")
    check_reachable("auto")  # left to Ray

    from onnxshap_cli.main import cli

    out = tmp_path / "run"
    args = ["run", str(MODELS / "digits_cnn_torch.onnx"), "--backend", "ray", "--address", "127.0.0.1:1"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 2 and "no Ray cluster answers at 127.0.0.1:1" in result.output
    assert not out.exists()


def test_ray_missing_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    game = FewHubsGame.make(n_players=6, n_hubs=2, n_items=20, seed=0)
    with pytest.raises(RuntimeSetupError) as info:
        estimate(game, "permutation", backend="ray", progress=False)
    assert str(info.value) == RAY_MISSING and 'pip install "onnxshap[ray]"' in RAY_MISSING

    from onnxshap_cli.main import cli

    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["run", str(MODELS / "digits_cnn_torch.onnx"), "--backend", "ray", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert result.output.strip() == f"onnxshap: error: {RAY_MISSING}"
    assert not out.exists()  # refused before anything was written
    result = CliRunner().invoke(
        cli, ["run", str(MODELS / "digits_cnn_torch.onnx"), "--backend", "ray", "--estimator", "loo"]
    )
    assert result.exit_code == 2 and "runs the sampling estimators" in result.output


def test_local_backend_imports_no_ray(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from onnxshap import estimate, instrument
        from onnxshap.games.onnx_game import OnnxGame

        inst = instrument(sys.argv[1], provider="cpu")
        data = np.load(sys.argv[2])
        game = OnnxGame(inst, data["x"][:64], data["y"][:64])
        estimate(game, "truncated", n_permutations=2, images=32, progress=False)
        estimate(game, "tmab", top_k=3, max_evals=300, progress=False, backend="local")
        loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
        assert not loaded, loaded
        assert "onnxshap.distributed" not in sys.modules
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(MODELS / "digits_cnn_torch.onnx"),
            str(MODELS / "digits_test.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_every_sampling_method_has_moments() -> None:
    from onnxshap.estimators.permutation import SamplingEstimator
    from onnxshap.estimators.tmab import PendingSamples

    game = FewHubsGame.make(n_players=6, n_hubs=2, n_items=20, seed=0, per_group=True)
    for name, cls in ESTIMATORS.items():
        if issubclass(cls, SamplingEstimator):
            est = cls(game, top_k=2) if name == "tmab" else cls(game)
            # RunningMoments, or tmab's queue of ranking samples for its confidence sequences
            assert all(isinstance(m, RunningMoments | PendingSamples) for m in est.moments())


def test_chunked_rounds_equal_the_local_walk_with_loo_control() -> None:
    game = FewHubsGame.make(n_players=20, n_hubs=3, n_items=200, seed=1)
    kw = {"top_k": 3, "max_evals": 3000, "permutations_per_round": 6, "loo_control": True}
    local = estimate(game, "tmab", seed=3, progress=False, **kw)
    chunked = estimate(game, "tmab", seed=3, progress=False, backend=ChunkedExecutor(4), **kw)
    assert chunked.evaluations == local.evaluations
    assert np.array_equal(chunked.values, local.values)
    assert local.metadata["loo_control"]["beta_by_position_bin"] is not None


def test_chunked_rounds_equal_the_local_walk_with_focus() -> None:
    game = FewHubsGame.make(n_players=40, n_hubs=3, n_items=200, seed=1, quota_range=(0.9, 0.965))
    kw = {"top_k": 3, "n_permutations": 60, "permutations_per_round": 6, "focus": 5, "focus_depth": 10}
    local = estimate(game, "tmab", seed=3, progress=False, **kw)
    chunked = estimate(game, "tmab", seed=3, progress=False, backend=ChunkedExecutor(4), **kw)
    assert chunked.evaluations == local.evaluations
    np.testing.assert_allclose(chunked.values, local.values, rtol=1e-12, atol=1e-15)
    assert local.metadata["focus"]["draws"] > 0 and local.metadata["focus"]["focused_units"]
