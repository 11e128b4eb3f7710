"""Checkpoints: atomic writes, exact resume (also after kill -9), refusal to mix runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from onnxshap.estimators import CheckpointError, estimate
from onnxshap.estimators.checkpoint import checkpoint_path, load_checkpoint
from onnxshap.games import FewHubsGame, InteractionGame
from tests.killing import kill_after_first_checkpoint

REPO = Path(__file__).resolve().parents[2]

FIELDS = ("values", "ci_low", "ci_high", "samples", "top_k")


def assert_same_result(a, b, same_rounds: bool = True) -> None:
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            assert np.array_equal(x, y, equal_nan=True), field
    assert a.evaluations == b.evaluations
    keys = ("stop_reason", "converged", "permutations") + (("rounds",) if same_rounds else ())
    for key in keys:
        assert a.metadata.get(key) == b.metadata.get(key), key


def test_checkpoint_is_written_and_a_finished_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    game = InteractionGame.random(8, 6, seed=0)
    res = estimate(game, "tmab", top_k=3, n_permutations=64, checkpoint_dir=tmp_path, progress=False)
    assert checkpoint_path(tmp_path).is_file()
    assert not list(tmp_path.glob("*.tmp"))
    arrays, fingerprint, state = load_checkpoint(tmp_path)
    assert fingerprint["method"] == "tmab" and fingerprint["seed"] == 0
    assert state["next_perm"] == 64 and state["evaluations"] == res.evaluations
    assert arrays["active"].shape == (8,)
    again = estimate(
        game, "tmab", top_k=3, n_permutations=64, checkpoint_dir=tmp_path, resume=True, progress=False
    )
    assert_same_result(res, again)


@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("permutation", {"antithetic": True, "keep_samples": True}),
        ("truncated", {"images": 30}),
    ],
)
def test_extending_a_run_equals_running_longer(tmp_path: Path, method: str, kw: dict) -> None:
    game = FewHubsGame.make(n_players=20, n_hubs=3, n_items=200, seed=1)
    estimate(game, method, n_permutations=10, checkpoint_dir=tmp_path, progress=False, **kw)
    resumed = estimate(
        game, method, n_permutations=30, checkpoint_dir=tmp_path, resume=True, progress=False, **kw
    )
    straight = estimate(game, method, n_permutations=30, progress=False, **kw)
    assert_same_result(resumed, straight, same_rounds=False)  # 10 + 20 permutations vs 16 + 14
    if kw.get("keep_samples"):
        assert np.array_equal(resumed.marginals, straight.marginals)
        assert np.array_equal(resumed.permutations, straight.permutations)


def test_exact_and_loo_checkpoint_too(tmp_path: Path) -> None:
    game = InteractionGame.random(13, 10, seed=2)  # 8192 coalitions: two chunks
    a = estimate(game, "exact", checkpoint_dir=tmp_path / "e", checkpoint_every_evals=1, progress=False)
    _, _, state = load_checkpoint(tmp_path / "e")
    assert state["next_coalition"] == 8192
    b = estimate(game, "exact", checkpoint_dir=tmp_path / "e", resume=True, progress=False)
    assert_same_result(a, b)
    c = estimate(game, "loo", checkpoint_dir=tmp_path / "l", progress=False)
    d = estimate(game, "loo", checkpoint_dir=tmp_path / "l", resume=True, progress=False)
    assert_same_result(c, d)


def test_refuses_to_overwrite_or_mix_runs(tmp_path: Path) -> None:
    game = InteractionGame.random(8, 6, seed=0)
    estimate(game, "permutation", n_permutations=4, seed=1, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="already exists: pass resume=True"):
        estimate(game, "permutation", n_permutations=4, seed=1, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="seed=1 there, 2 here"):
        estimate(game, "permutation", seed=2, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"delta=0\.05 there, 0\.1 here"):
        estimate(game, "permutation", seed=1, delta=0.1, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="method='permutation' there, 'truncated' here"):
        estimate(game, "truncated", seed=1, checkpoint_dir=tmp_path, resume=True, progress=False)
    other = InteractionGame.random(9, 6, seed=0)
    with pytest.raises(CheckpointError, match="n_players=8 there, 9 here"):
        estimate(other, "permutation", seed=1, checkpoint_dir=tmp_path, resume=True, progress=False)
    same_size = InteractionGame.random(8, 6, seed=5)
    with pytest.raises(CheckpointError, match="v_all"):
        estimate(same_size, "permutation", seed=1, checkpoint_dir=tmp_path, resume=True, progress=False)
    checkpoint_path(tmp_path).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        estimate(game, "permutation", seed=1, checkpoint_dir=tmp_path, resume=True, progress=False)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path: Path) -> None:
    game = InteractionGame.random(6, 4, seed=3)
    a = estimate(
        game, "permutation", n_permutations=8, checkpoint_dir=tmp_path / "x", resume=True, progress=False
    )
    b = estimate(game, "permutation", n_permutations=8, progress=False)
    assert_same_result(a, b)


SCRIPT = """
import sys, time
import numpy as np
from onnxshap.estimators import estimate
from onnxshap.games import FunctionGame, FewHubsGame

METHOD, CKPT, OUT, SLEEP = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
base = FewHubsGame.make(n_players=40, n_hubs=5, n_items=200, seed=4)

def slow(c):
    time.sleep(SLEEP)
    return base(c)

game = FunctionGame(slow, 40, batch_size=16, value_range=0.9)
kwargs = dict(top_k=4) if METHOD == "tmab" else dict(n_permutations=200, keep_samples=True)
res = estimate(game, METHOD, seed=7, max_evals=12_000, checkpoint_dir=CKPT, checkpoint_every_evals=300,
               checkpoint_every_seconds=None, progress=False, **kwargs)
res.save(OUT)
"""


@pytest.mark.parametrize("method", ["tmab", "permutation"])
def test_resume_after_kill_9_equals_uninterrupted_run(tmp_path: Path, method: str) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    ckpt, out = tmp_path / "ckpt", tmp_path / "result"
    kill_after_first_checkpoint([str(script), method, str(ckpt), str(out), "0.003"], ckpt)
    assert not out.with_suffix(".npz").exists(), "the run finished before it was killed"
    _, _, state = load_checkpoint(ckpt)
    assert 0 < state["evaluations"] < 12_000

    base = FewHubsGame.make(n_players=40, n_hubs=5, n_items=200, seed=4)
    from onnxshap.games import FunctionGame

    kwargs = {"top_k": 4} if method == "tmab" else {"n_permutations": 200, "keep_samples": True}
    common = dict(seed=7, max_evals=12_000, progress=False, **kwargs)
    resumed = estimate(
        FunctionGame(base, 40, value_range=0.9), method, checkpoint_dir=ckpt, resume=True, **common
    )
    straight = estimate(FunctionGame(base, 40, value_range=0.9), method, **common)
    assert_same_result(resumed, straight)
    if method == "permutation":
        assert np.array_equal(resumed.marginals, straight.marginals)
