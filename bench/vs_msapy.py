"""msapy driving PyTorch vs onnxshap on ONNX Runtime: the same digits CNN, data batch and permutations.

    python bench/vs_msapy.py [--permutations P] [--batch N]

Other options: --repeats N (3), --ref-permutations R (2000), --race-seeds K (3), --cap-permutations C
(500), --seed S (0), --torch-threads T (2), --msapy-parallel J (2; 0 skips that row), --no-cache. Skips (exit 0) without torch
or msapy (``pip install -e .[bench]``). Run it on a quiet machine: the load average is printed, and
PyTorch's 2-thread CPU kernels slow down far more than ONNX Runtime's when other processes take the cores.

The network is ``models/digits_cnn_torch.onnx``: its PyTorch module is rebuilt here with the weights read
from the ONNX initializers (torch logits must equal ONNX Runtime's to 1e-4). Players: the 80 conv filters
(``conv1:0`` ... ``conv3:31``); v(S) = top-1 accuracy on the first N test items with every filter outside
S zeroed after its ReLU (onnxshap's default after-chain placement).

(a)  msapy 1.7.3 ``msa.interface`` with its defaults (lazy, serial; 1 + 80 P objective calls); the
     objective zeroes the lesioned channels through forward hooks on relu1 / relu2 / relu3.
(a') the same with ``lazy=False, n_parallel_games=J`` (msapy's joblib mode; not its default).
(b)  onnxshap ``estimate(game, method="permutation", n_permutations=P)``, timed from ``instrument()``.
(c)  onnxshap tmab (``estimate(game, method="tmab", top_k=10)``, stepped round by round to read its
     top-10 after each round) until its top-10 first has recall >= 0.9 against the reference.

Agreement: per filter, |(a) - (b)| within the combined 95% Student-t interval (msapy's from its
per-permutation table), and the correlation of the two value vectors. Top-10 race: the reference is
onnxshap permutation sampling with R permutations and an independent seed, cached in .cache/bench/.
msapy's time to the same recall is extrapolated: msapy runs plain permutation sampling (its lazy walk
removes one element after another from the full set, as onnxshap's permutation estimator does), so the
permutations it needs are read off an onnxshap plain-sampling run (another random stream), multiplied by
msapy's seconds per permutation measured in (a); msapy's own table is checked too. Medians over K seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "models" / "digits_cnn_torch.onnx"
DATA = ROOT / "models" / "digits_test.npz"
CACHE = ROOT / ".cache" / "bench"
REF_SEED = 1_000_003  # the reference run uses a seed no timed run uses
TOP_K = 10
RECALL = 0.9
# conv layer -> the module whose output is masked (after the activation, as onnxshap's after-chain)
HOOKED = {"conv1": "relu1", "conv2": "relu2", "conv3": "relu3"}

if TYPE_CHECKING:
    import torch

    from onnxshap.games.onnx_game import OnnxGame
    from onnxshap.results import ShapleyResult


# ------------------------------------------------------------------------------------------------
# The PyTorch side


def make_torch_cnn() -> torch.nn.Module:
    """The DigitsCNN of models/build_fixtures.py (untrained), the class the fixture was trained with."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from models.build_fixtures import _torch_architectures

    return _torch_architectures()["digits_cnn_torch"]()


def load_torch_from_onnx(path: Path = MODEL) -> torch.nn.Module:
    """Rebuild the CNN and load its weights from the ONNX initializers (named like the state dict)."""
    import onnx
    import torch
    from onnx import numpy_helper

    model = make_torch_cnn()
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = model.state_dict()
    missing = sorted(set(state) - set(inits))
    if missing:
        raise RuntimeError(f"{path.name} lacks initializers for {', '.join(missing)}")
    model.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in state}, strict=True)
    return model.eval()


def max_logit_diff(model: torch.nn.Module, x: np.ndarray, path: Path = MODEL) -> float:
    """max |torch logits - ONNX Runtime logits| on ``x`` (plain session, 2 threads, CPU)."""
    import onnxruntime as ort
    import torch

    from onnxshap.runtime.session import input_metas

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {input_metas(sess)[0].name: x})[0]
    with torch.inference_mode():
        out = model(torch.from_numpy(x)).numpy()
    return float(np.abs(out - ref).max())


class HookedAccuracy:
    """msapy objective: accuracy on (x, y) with the lesioned filters' channels zeroed by forward hooks.

    One hook per conv layer multiplies the ReLU output by a [1, C, 1, 1] keep-mask, set per call from the
    lesioned element names ("conv2:7"). ``calls`` counts objective calls.
    """

    def __init__(self, model: torch.nn.Module, x: np.ndarray, y: np.ndarray, elements: list[str]) -> None:
        import torch

        self.model = model
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.elements = elements
        self.index = {e: i for i, e in enumerate(elements)}
        self.keep = np.ones(len(elements), dtype=np.float32)
        self.masks: dict[str, torch.Tensor] = {}
        self.slices: dict[str, slice] = {}
        self.handles = []
        start = 0
        for conv, act in HOOKED.items():
            channels = getattr(model, conv).out_channels
            self.slices[conv] = slice(start, start + channels)
            self.masks[conv] = torch.ones(1, channels, 1, 1)
            hook = self._hook(self.masks[conv])
            self.handles.append(getattr(model, act).register_forward_hook(hook))
            start += channels
        if start != len(elements):
            raise ValueError(f"{len(elements)} elements for {start} conv filters")
        self.calls = 0

    @staticmethod
    def _hook(mask: torch.Tensor) -> Callable[..., torch.Tensor]:
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return output * mask

        return hook

    def __call__(self, lesioned: tuple[str, ...]) -> float:
        """Accuracy with the ``lesioned`` filters removed (msapy passes the complement of the coalition)."""
        import torch

        self.calls += 1
        self.keep[:] = 1.0
        if lesioned:
            self.keep[[self.index[e] for e in lesioned]] = 0.0
        for conv, sl in self.slices.items():
            self.masks[conv].view(-1).copy_(torch.from_numpy(self.keep[sl]))
        with torch.inference_mode():
            pred = self.model(self.x).argmax(1)
        return float((pred == self.y).float().mean())

    def remove(self) -> None:
        """Remove the hooks."""
        for h in self.handles:
            h.remove()


@dataclass
class MsapyRun:
    """msapy's per-permutation table [P, n] (rows in msapy's order), wall time and objective calls."""

    table: np.ndarray
    wall: float
    calls: int
    mode: str

    @property
    def values(self) -> np.ndarray:
        """Mean contribution per element (msapy's ``shapley_values``)."""
        return self.table.mean(axis=0)

    def halfwidth(self, delta: float = 0.05) -> np.ndarray:
        """Half-width of the (1 - delta) Student-t interval per element."""
        from onnxshap.estimators.bounds import t_halfwidth

        counts = np.full(self.table.shape[1], self.table.shape[0])
        return t_halfwidth(self.table.var(axis=0, ddof=1), counts, delta)


def run_msapy(objective: HookedAccuracy, n_permutations: int, seed: int, parallel: int = 0) -> MsapyRun:
    """``msa.interface`` as a user calls it: defaults (lazy, serial), progress bars silenced to devnull.

    ``parallel > 0`` uses msapy's other mode instead: ``lazy=False`` (the combination space is built
    first) with ``n_parallel_games=parallel`` joblib workers.
    """
    from msapy import msa

    kwargs: dict[str, Any] = {}
    if parallel:
        kwargs = {"lazy": False, "n_parallel_games": parallel}
    calls0 = objective.calls
    with (
        warnings.catch_warnings(),
        open(os.devnull, "w") as null,
        contextlib.redirect_stdout(null),
        contextlib.redirect_stderr(null),
    ):
        warnings.simplefilter("ignore")  # "number of permutations is kinda small" below 100
        t0 = time.perf_counter()
        table = msa.interface(
            n_permutations=n_permutations,
            elements=list(objective.elements),
            objective_function=objective,
            rng=np.random.default_rng(seed),
            **kwargs,
        )
        wall = time.perf_counter() - t0
    arr = np.asarray(table[objective.elements].to_numpy(), dtype=np.float64)
    if parallel:  # the workers call copies of the objective: count the coalitions msapy evaluates
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            perms = msa.make_permutation_space(
                elements=list(objective.elements),
                n_permutations=n_permutations,
                rng=np.random.default_rng(seed),
            )
        calls = len(msa.make_combination_space(permutation_space=perms))
    else:
        calls = objective.calls - calls0
    mode = f"lazy=False, joblib n_parallel_games={parallel}" if parallel else "defaults (lazy, serial)"
    return MsapyRun(arr, wall, calls, mode)


# ------------------------------------------------------------------------------------------------
# The onnxshap side


def make_game(x: np.ndarray, y: np.ndarray) -> OnnxGame:
    """instrument() + OnnxGame with the accuracy metric (what a user writes)."""
    from onnxshap import instrument
    from onnxshap.games.onnx_game import OnnxGame

    inst = instrument(MODEL, provider="cpu")
    return OnnxGame(inst, x, y, metric="accuracy")


def element_names(game: OnnxGame) -> list[str]:
    """msapy element names in onnxshap's unit order: "<torch conv module>:<channel>"."""
    names = []
    for layer in game.inst.units.layers:
        module = layer.weight.rsplit(".", 1)[0] if layer.weight else layer.layer
        if module not in HOOKED:
            raise RuntimeError(f"unexpected unit layer {layer.layer} (weight {layer.weight})")
        names += [f"{module}:{c}" for c in range(layer.channels)]
    return names


def run_permutation(
    x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int
) -> tuple[ShapleyResult, float, float]:
    """(b): instrument + game + permutation estimate; (result, end-to-end wall time, setup time)."""
    from onnxshap import estimate

    t0 = time.perf_counter()
    game = make_game(x, y)
    setup = time.perf_counter() - t0
    res = estimate(game, method="permutation", n_permutations=n_permutations, seed=seed, progress=False)
    return res, time.perf_counter() - t0, setup


def reference(
    game: OnnxGame, x: np.ndarray, y: np.ndarray, n_permutations: int, use_cache: bool
) -> tuple[np.ndarray, float, bool]:
    """Reference values (onnxshap permutation, ``n_permutations``, seed REF_SEED); (values, wall, cached)."""
    from onnxshap import estimate

    h = hashlib.sha256(MODEL.read_bytes())
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    path = CACHE / f"vs_msapy_ref_{h.hexdigest()[:12]}_n{len(x)}_p{n_permutations}_s{REF_SEED}.npz"
    if use_cache and path.is_file():
        with np.load(path) as z:
            return z["values"], float(z["wall"]), True
    t0 = time.perf_counter()
    res = estimate(game, method="permutation", n_permutations=n_permutations, seed=REF_SEED, progress=False)
    wall = time.perf_counter() - t0
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, values=res.values, ci_low=res.ci_low, ci_high=res.ci_high, wall=wall)
    return res.values, wall, False


def top(values: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Indices of the k largest values (ties by index)."""
    return np.argsort(-values, kind="stable")[:k]


def recall(values: np.ndarray, ref_top: np.ndarray) -> float:
    """Fraction of the reference top-k found in the top-k of ``values``."""
    return len(set(top(values, len(ref_top)).tolist()) & set(ref_top.tolist())) / len(ref_top)


def running_recalls(marginals: np.ndarray, ref_top: np.ndarray) -> np.ndarray:
    """Recall of the running mean's top-k after 1, 2, ... rows of a [P, n] marginal table."""
    means = np.cumsum(marginals, axis=0) / np.arange(1, len(marginals) + 1)[:, None]
    return np.array([recall(m, ref_top) for m in means])


@dataclass
class Trajectory:
    """Top-k recall after each round of an estimator run, with its cumulative work time and evaluations."""

    seconds: list[float]
    evaluations: list[int]
    permutations: list[int]
    recalls: list[float]
    stop: str  # "reached", "cap" or the estimator's own stop reason

    @property
    def reached(self) -> bool:
        """Whether the run reached top-k recall >= 0.9."""
        return self.stop == "reached"


def walk(est: Any, ref_top: np.ndarray, max_evals: int) -> Trajectory:
    """Step a sampling estimator (the loop ``estimate`` runs, minus checkpoints and the progress bar).

    After every round, record the recall of its current top-k against ``ref_top``; stop once it is
    >= 0.9 ("reached"), when the estimator stops on its own, or at ``max_evals`` ("cap"). Seconds count
    the estimator's work only (not the recall bookkeeping).
    """
    t = time.perf_counter()
    est.start()
    work = time.perf_counter() - t
    traj = Trajectory([], [], [], [], "cap")
    while est.evaluations < max_evals:
        reason = est.stop_reason()
        if reason is not None:
            traj.stop = reason
            break
        t = time.perf_counter()
        est.step(None)
        work += time.perf_counter() - t
        traj.seconds.append(work)
        traj.evaluations.append(est.evaluations)
        traj.permutations.append(est.next_perm)
        traj.recalls.append(recall(est.estimates()[0], ref_top))
        if traj.recalls[-1] >= RECALL:
            traj.stop = "reached"
            break
    return traj


def run_tmab(game: OnnxGame, ref_top: np.ndarray, seed: int, max_evals: int) -> Trajectory:
    """(c): onnxshap's tmab (``estimate(game, method="tmab", top_k=10, seed=seed)``), stepped round by round."""
    from onnxshap.estimators.tmab import TMABEstimator

    return walk(TMABEstimator(game, top_k=TOP_K, seed=seed), ref_top, max_evals)


def run_plain(game: OnnxGame, ref_top: np.ndarray, seed: int, max_evals: int) -> Trajectory:
    """Plain permutation sampling (msapy's estimator) on onnxshap, one permutation per round."""
    from onnxshap.estimators.permutation import PermutationEstimator

    return walk(PermutationEstimator(game, seed=seed, permutations_per_round=1), ref_top, max_evals)


@dataclass
class RaceSeed:
    """One seed of the top-k race: plain sampling's permutations and tmab's time to recall >= 0.9."""

    seed: int
    plain: Trajectory
    tmab: Trajectory

    def msapy_seconds(self, per_perm: float) -> float:
        """msapy's extrapolated time: plain sampling's permutations x msapy's seconds per permutation."""
        return self.plain.permutations[-1] * per_perm if self.plain.reached else math.inf

    def tmab_seconds(self, setup: float) -> float:
        """tmab's time: its work until recall >= 0.9 plus the instrument + game setup."""
        return setup + self.tmab.seconds[-1] if self.tmab.reached else math.inf


def race(game: OnnxGame, ref_top: np.ndarray, seeds: list[int], cap_perms: int) -> list[RaceSeed]:
    """For each seed, run plain sampling and tmab until their top-k recall reaches 0.9 (or the cap)."""
    cap = cap_perms * (game.n_players - 1) + 2
    return [RaceSeed(s, run_plain(game, ref_top, s, cap), run_tmab(game, ref_top, s, cap)) for s in seeds]


# ------------------------------------------------------------------------------------------------
# pair= and lesioned= on the same permutations (msapy's lazy walk on an objective that calls the game)


class GameObjective:
    """msapy objective over a game's players named ``p0, p1, ...``: the game's value with ``lesioned`` out."""

    def __init__(self, game: Any) -> None:
        self.game = game
        self.elements = [f"p{i}" for i in range(game.n_players)]
        self.index = {e: i for i, e in enumerate(self.elements)}

    def __call__(self, lesioned: tuple[str, ...]) -> float:
        keep = np.ones(self.game.n_players, bool)
        keep[[self.index[e] for e in lesioned]] = False
        return float(self.game(keep[None])[0])


def _msapy_interface(objective: GameObjective, perms: list[tuple[str, ...]], **kwargs: Any) -> Any:
    from msapy import msa

    with (
        warnings.catch_warnings(),
        open(os.devnull, "w") as null,
        contextlib.redirect_stdout(null),
        contextlib.redirect_stderr(null),
    ):
        warnings.simplefilter("ignore")
        return msa.interface(
            n_permutations=len(perms),
            elements=list(objective.elements),
            objective_function=objective,
            permutation_space=perms,
            lazy=True,
            **kwargs,
        )


def same_permutations(game: Any, i: int, j: int, n_permutations: int, seed: int = 0) -> dict[str, float]:
    """msapy's ``lesioned=`` and ``pair=`` against onnxshap's LesionedGame / merged-pair game, walked on the
    same permutations (onnxshap's, kept with ``keep_samples=True``, handed to msapy as ``permutation_space``).

    Returns {"lesioned_onnxshap", "lesioned_msapy": i's value with j lesioned; "pair_onnxshap", "pair_msapy":
    the value of {i, j} played as one player (msapy: gamma_ij, the sum of the pair's values)}.
    """
    from onnxshap import estimate
    from onnxshap.games.grouped import LesionedGame, merged_pair

    objective = GameObjective(game)
    names = objective.elements
    kw = {"n_permutations": n_permutations, "seed": seed, "keep_samples": True, "progress": False}

    lesioned = LesionedGame(game, [j])
    res = estimate(lesioned, method="permutation", **kw)
    inner = lesioned.remaining
    # msapy walks all elements; the lesioned one (appended last) changes nothing when removed.
    perms = [(*(names[inner[k]] for k in order), names[j]) for order in res.permutations]
    table = _msapy_interface(objective, perms, lesioned=names[j])
    out = {
        "lesioned_onnxshap": float(res.values[list(inner).index(i)]),
        "lesioned_msapy": float(table.shapley_values[names[i]]),
    }

    merged, at = merged_pair(game, i, j)
    res = estimate(merged, method="permutation", **kw)
    first, second = min(i, j), max(i, j)
    perms = []
    for order in res.permutations:
        seq: list[str] = []
        for k in order:
            seq += [names[p] for p in merged.groups[k]]  # the pair stays adjacent, as msapy's pair= makes it
        perms.append(tuple(seq))
    table = _msapy_interface(objective, perms, pair=(names[first], names[second]))
    out["pair_onnxshap"] = float(res.values[at])
    out["pair_msapy"] = float(table.shapley_values[[names[first], names[second]]].sum())
    return out


# ------------------------------------------------------------------------------------------------
# Report


def agreement(a: MsapyRun, b: ShapleyResult) -> tuple[float, float, float]:
    """(fraction within the combined 95% interval, Pearson r, Spearman rho) of (a) vs (b)."""
    half_a = a.halfwidth(0.05)
    half_b = (b.ci_high - b.ci_low) / 2.0
    diff = np.abs(a.values - b.values)
    within = diff <= np.sqrt(np.nan_to_num(half_a) ** 2 + np.nan_to_num(half_b) ** 2) + 1e-12
    pearson = float(np.corrcoef(a.values, b.values)[0, 1])
    ranks = [np.argsort(np.argsort(v, kind="stable"), kind="stable") for v in (a.values, b.values)]
    spearman = float(np.corrcoef(*ranks)[0, 1])
    return float(within.mean()), pearson, spearman


def _fmt_ratio(num: float | None, den: float | None) -> str:
    return "n/a" if not num or not den else f"{num / den:.1f}x"


def _row(label: str, wall: float | None, evals: int | None, ratio: str, note: str = "") -> None:
    w = "n/a" if wall is None else f"{wall:.2f}"
    e = "n/a" if evals is None else f"{evals}"
    per = "n/a" if wall is None or not evals else f"{wall / evals * 1e3:.3f}"
    print(f"{label:<42} {w:>9} {e:>8} {per:>9} {ratio:>9}  {note}")


def missing_dependencies() -> list[str]:
    """Which of torch / msapy cannot be imported."""
    return [m for m in ("torch", "msapy") if importlib.util.find_spec(m) is None]


def forward_ms(fn: Callable[[], Any], rounds: int = 30) -> float:
    """Median milliseconds of ``fn()`` after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def pairs_main(n_permutations: int, batch: int, seed: int) -> int:
    """Print msapy's lesioned= / pair= values next to onnxshap's, walked on the same permutations."""
    if importlib.util.find_spec("msapy") is None:
        print("SKIP bench/vs_msapy.py --pairs: msapy not installed (pip install -e .[bench])")
        return 0
    from onnxshap.games.grouped import GroupedGame

    with np.load(DATA) as npz:
        x, y = np.ascontiguousarray(npz["x"][:batch]), npz["y"][:batch]
    game = GroupedGame(make_game(x, y), [range(a, a + 8) for a in range(0, 80, 8)])
    print(f"python bench/vs_msapy.py --pairs --permutations {n_permutations} --batch {batch}")
    print(
        f"{MODEL.name}: 10 players (blocks of 8 conv filters), accuracy on {batch} items, P = {n_permutations}"
    )
    print(
        f"{'i':>3} {'j':>3} {'lesioned onnxshap':>18} {'lesioned msapy':>15} {'pair onnxshap':>14} {'pair msapy':>11}"
    )
    worst = 0.0
    for i, j in ((0, 1), (2, 7), (5, 9)):
        t = time.perf_counter()
        got = same_permutations(game, i, j, n_permutations, seed)
        worst = max(worst, abs(got["lesioned_onnxshap"] - got["lesioned_msapy"]))
        worst = max(worst, abs(got["pair_onnxshap"] - got["pair_msapy"]))
        print(
            f"{i:>3} {j:>3} {got['lesioned_onnxshap']:>18.6f} {got['lesioned_msapy']:>15.6f} "
            f"{got['pair_onnxshap']:>14.6f} {got['pair_msapy']:>11.6f}  ({time.perf_counter() - t:.1f} s)"
        )
    print(f"largest difference: {worst:.1e}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=50, help="P for (a) and (b) (default 50)")
    parser.add_argument("--batch", type=int, default=128, help="first N test items (default 128)")
    parser.add_argument("--ref-permutations", type=int, default=2000, help="reference run (default 2000)")
    parser.add_argument(
        "--cap-permutations", type=int, default=500, help="length cap of the race runs (default 500)"
    )
    parser.add_argument("--race-seeds", type=int, default=3, help="seeds of the top-10 race (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of (a) and (b) (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument(
        "--msapy-parallel",
        type=int,
        default=2,
        metavar="J",
        help="also time msapy's lazy=False joblib mode with J workers (default 2; 0: skip)",
    )
    parser.add_argument("--no-cache", action="store_true", help="recompute the reference run")
    parser.add_argument(
        "--pairs",
        action="store_true",
        help="only compare msapy's pair= and lesioned= with onnxshap on the same permutations (no torch)",
    )
    args = parser.parse_args(argv)
    if args.pairs:
        return pairs_main(args.permutations, args.batch, args.seed)

    missing = missing_dependencies()
    if missing:
        print(f"SKIP bench/vs_msapy.py: {' and '.join(missing)} not installed (pip install -e .[bench])")
        return 0
    from importlib.metadata import version

    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.torch_threads)
    with np.load(DATA) as npz:
        x_all, y_all = npz["x"], npz["y"]
    x, y = np.ascontiguousarray(x_all[: args.batch]), y_all[: args.batch]
    p = args.permutations

    model = load_torch_from_onnx()
    diff = max_logit_diff(model, x_all)
    if diff > 1e-4:
        raise SystemExit(f"torch and ONNX Runtime logits differ by {diff:.2e} > 1e-4: not the same network")
    game = make_game(x, y)  # for names, the reference and (c); (b) builds its own
    elements = element_names(game)
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        torch_ms = forward_ms(lambda: model(xt))
    ort_ms = forward_ms(lambda: game.inst.run_original(x))
    load = os.getloadavg()[0]

    print(f"python bench/vs_msapy.py --permutations {p} --batch {len(x)}")
    print(
        f"{MODEL.name}: {len(elements)} conv filters, first {len(x)} test items, P = {p}, seed {args.seed}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), msapy {version('msapy')}, "
        f"onnxruntime {ort.__version__} ({game.inst.provider}, {game.inst.evaluator.info.threads} threads); "
        f"{platform.machine()}, {os.cpu_count()} cpus, load avg {load:.2f}"
    )
    print(
        f"same network: max |torch - ORT| logit on {len(x_all)} items {diff:.1e}; v(all) {game.v_all:.4f}, "
        f"v(empty) {game.v_empty:.4f}; one unmasked forward of the batch: torch {torch_ms:.2f} ms, "
        f"ORT {ort_ms:.2f} ms"
    )
    if load > 1.0:
        print(
            f"WARNING: load average {load:.2f} on {os.cpu_count()} cpus: other processes distort the timings"
        )
    print()

    objective = HookedAccuracy(model, x, y, elements)
    objective(())  # warm-up
    # (a) and (b) alternate `repeats` times (the same work each time); walls are the best (timeit style)
    a = run_msapy(objective, p, args.seed)
    b, b_first, setup = run_permutation(x, y, p, args.seed)
    a_walls, b_walls = [a.wall], [b_first]
    for _ in range(1, args.repeats):
        a_walls.append(run_msapy(objective, p, args.seed).wall)
        b_walls.append(run_permutation(x, y, p, args.seed)[1])
    a_wall, b_wall = min(a_walls), min(b_walls)
    a_par = run_msapy(objective, p, args.seed, parallel=args.msapy_parallel) if args.msapy_parallel else None
    objective.remove()

    ref_values, ref_wall, cached = reference(game, x, y, args.ref_permutations, not args.no_cache)
    ref_top = top(ref_values)
    seeds = [args.seed + i for i in range(args.race_seeds)]
    races = race(game, ref_top, seeds, args.cap_permutations)
    per_perm = a_wall / p
    msapy_s = float(np.median([r.msapy_seconds(per_perm) for r in races]))
    tmab_s = float(np.median([r.tmab_seconds(setup) for r in races]))
    ratio_c = msapy_s / tmab_s if math.isfinite(msapy_s) and math.isfinite(tmab_s) else None
    tmab_evals = float(np.median([r.tmab.evaluations[-1] if r.tmab.reached else math.inf for r in races]))

    print(f"{'run':<42} {'wall s':>9} {'evals':>8} {'ms/eval':>9} {'speed-up':>9}  note")
    spread = f"best of {args.repeats} alternating runs"
    a_note = f"msa.interface {a.mode}; {spread} ({min(a_walls):.1f}..{max(a_walls):.1f} s)"
    _row(f"(a) msapy + torch hooks, P={p}", a_wall, a.calls, "1.0x", a_note)
    if a_par is not None:
        _row(
            f"(a') msapy + torch hooks, P={p}",
            a_par.wall,
            a_par.calls,
            _fmt_ratio(a_wall, a_par.wall),
            f"msa.interface {a_par.mode}",
        )
    _row(
        f"(b) onnxshap permutation, P={p}",
        b_wall,
        b.evaluations,
        _fmt_ratio(a_wall, b_wall),
        f"instrument + game {setup:.2f} s + estimate; {spread} ({min(b_walls):.1f}..{max(b_walls):.1f} s)",
    )
    _row(
        f"(c) onnxshap tmab top-{TOP_K} to recall >= {RECALL}",
        tmab_s if math.isfinite(tmab_s) else None,
        int(tmab_evals) if math.isfinite(tmab_evals) else None,
        "n/a" if ratio_c is None else f"{ratio_c:.1f}x",
        f"median of {len(seeds)} seeds, vs msapy to the same recall (below)",
    )
    print()

    within, pearson, spearman = agreement(a, b)
    print(
        f"agreement (a) vs (b): {within:.1%} of {len(elements)} filters differ by less than the combined 95% "
        f"interval; Pearson r {pearson:.4f}, Spearman rho {spearman:.4f}; sums (a) {a.values.sum():.4f}, "
        f"(b) {b.values.sum():.4f} (v(all) - v(empty) = {game.v_all - game.v_empty:.4f})"
    )
    print()

    srt = np.sort(ref_values)[::-1]
    where = CACHE.relative_to(ROOT)
    src = f"read from {where}/" if cached else f"computed now in {ref_wall:.0f} s, cached in {where}/"
    print(
        f"top-{TOP_K} race: time until the top-{TOP_K} first has recall >= {RECALL} against a reference = "
        f"onnxshap permutation, {args.ref_permutations} permutations, seed {REF_SEED} ({src}); reference "
        f"{TOP_K - 1}th..{TOP_K + 3}th values {', '.join(f'{v:.4f}' for v in srt[TOP_K - 2 : TOP_K + 3])}"
    )
    print(
        f"msapy's time is extrapolated: the permutations plain sampling (msapy's estimator; run on onnxshap, "
        f"one permutation per round) needs, times msapy's {per_perm:.3f} s per permutation measured in (a)"
    )
    own = np.flatnonzero(running_recalls(a.table, ref_top) >= RECALL)
    print(
        "  check: msapy's own table (a) "
        + (
            f"reaches it at permutation {own[0] + 1} of {p}"
            if len(own)
            else f"does not reach it within its P = {p} permutations"
        )
    )
    print(
        f"{'seed':>6} {'plain perms':>12} {'msapy s':>9} {'tmab perms':>11} {'tmab evals':>11} {'tmab s':>8}"
    )
    for r in races:
        cap_txt = f">{args.cap_permutations}"
        print(
            f"{r.seed:>6} {r.plain.permutations[-1] if r.plain.reached else cap_txt:>12} "
            f"{r.msapy_seconds(per_perm):>9.1f} "
            f"{r.tmab.permutations[-1] if r.tmab.reached else cap_txt:>11} "
            f"{r.tmab.evaluations[-1] if r.tmab.reached else cap_txt:>11} {r.tmab_seconds(setup):>8.1f}"
        )
    print(
        f"median: msapy {msapy_s:.1f} s, tmab {tmab_s:.1f} s -> "
        + ("n/a" if ratio_c is None else f"msapy / tmab = {ratio_c:.1f}x")
    )
    print()

    ratio_b = a_wall / b_wall
    verdict_c = "n/a" if ratio_c is None else f"{ratio_c:.1f}x {'PASS' if ratio_c >= 30 else 'FAIL'}"
    print(
        f"targets: (b) >= 3x faster than (a): {ratio_b:.1f}x {'PASS' if ratio_b >= 3 else 'FAIL'}; "
        f"(c) >= 30x faster than (a) to the same top-{TOP_K}: {verdict_c}"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
