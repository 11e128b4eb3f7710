"""The Ray backend: a pool of actors walks the chunks of each round; the driver keeps the state.

Design (see also :mod:`onnxshap.distributed.chunks`):

* The driver (this process) keeps the estimator: its moments, the tmab active set, checkpoints. It
  evaluates v(all) and v(empty) itself (two calls); every permutation is walked by an actor.
* The game is pickled once into Ray's object store (``ray.put``); each actor deserialises it once and
  builds its own ONNX Runtime session (an ``Instrumented`` pickles its model and unit table, not its
  sessions). A new game (e.g. the next ``estimate`` call on a reused executor) is shipped the same way.
* Resources: with GPUs in the cluster (and an ONNX game not forced to ``cpu``) one actor per GPU
  (``num_gpus=1``, provider ``cuda``, ``workers`` defaults to the number of GPUs); otherwise the
  cluster's CPUs are shared equally between ``workers`` actors (fractional ``num_cpus`` when there are
  more workers than CPUs) and each session gets that share of its node's physical cores as intra-op
  threads, at least 1 (oversubscribing ONNX Runtime's threads is much slower than leaving cores idle).
  ``workers`` defaults to one actor per node. Actors are spread over the nodes.
* Rounds: a round is cut into chunks of ``chunk_size`` permutations (by index, independent of the
  number of workers); each idle actor gets the next chunk; the driver folds the chunks in index order
  once the round is complete, then the estimator updates (tmab's active set) before the next round.
  Only as many actors as a round has chunks can be busy: raise ``permutations_per_round`` for big pools.
* Faults: an actor that dies (process killed, node lost) has its chunk given to a replacement actor,
  which reloads the game; results are unchanged since a chunk's result depends on its indices only.
  A game or code error inside a chunk is re-raised as is (it is not a fault to retry).
* Workers import onnxshap from where the driver did (the driver's package folder is put first on the
  actors' PYTHONPATH unless onnxshap is installed in site-packages), so a checkout runs its own code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sysconfig
import time
from collections import deque
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from onnxshap.distributed.chunks import (
    DEFAULT_CHUNK,
    ChunkResult,
    Summary,
    chunk_bounds,
    fold_chunk,
    prepare_worker_game,
    walk_chunk,
)
from onnxshap.errors import RuntimeSetupError
from onnxshap.estimators.permutation import SamplingEstimator
from onnxshap.games.base import Game

START_TIMEOUT = 600.0  # seconds to wait for actors to be scheduled and load the game

# An actor (or its process, or its node) is gone: its chunk goes to another actor.
FAULTS: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.NodeDiedError,
)


class RoundWorker:
    """A Ray actor: holds one game (with its own ONNX Runtime session) and walks chunks of rounds."""

    def __init__(self, cpu_share: float, gpu: bool) -> None:
        self.cpu_share = cpu_share
        self.gpu = gpu
        self.game: Game | None = None
        self.key = -1

    def threads(self) -> int:
        """This actor's share of its node's physical cores (at least 1)."""
        from onnxshap.runtime.providers import physical_cores

        if self.gpu:
            return 1
        logical = os.cpu_count() or 1
        return max(1, int(self.cpu_share * physical_cores() / logical + 1e-9))

    def load(self, key: int, game: Game) -> dict[str, Any]:
        """Take ``game`` (already deserialised by Ray) and build its session."""
        self.game, self.key = game, key
        return {**prepare_worker_game(game, "cuda" if self.gpu else "cpu", self.threads()), "node": _node()}

    def walk(
        self, key: int, start: int, stop: int, options: dict[str, Any], summary: Summary | None
    ) -> ChunkResult:
        """Walk permutations [start, stop) of the loaded game."""
        if key != self.key or self.game is None:
            raise RuntimeError(f"worker holds game {self.key}, asked for game {key}")
        return walk_chunk(self.game, start, stop, options, summary)

    def exit_now(self) -> None:
        """Die at once, as a crashed worker would (fault-injection for tests)."""
        os._exit(1)


_RemoteWorker = ray.remote(RoundWorker)


def _node() -> str:
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # pragma: no cover - outside an actor
        return ""


def _worker_runtime_env() -> dict[str, Any] | None:
    """Put the driver's onnxshap first on the actors' PYTHONPATH when it is not an installed package."""
    import onnxshap

    root = Path(onnxshap.__file__).resolve().parent.parent
    installed = {
        Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
    }
    if root in installed:
        return None
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


@contextlib.contextmanager
def _loopback_only():
    """While a new local instance starts: every Ray process (GCS, raylet, agents, workers, this driver)
    binds 127.0.0.1 only. Ray turns a node address of 127.0.0.1 into the machine's reachable address
    unless its single-machine mode is on (what it does on macOS and Windows), so switch that on."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


class RayExecutor:
    """Walks each round's chunks on a pool of Ray actors (see the module docstring for the design).

    ``address``: "auto" (the running cluster), "HOST:PORT", or None (the Ray instance this process has
    already joined, else a new local one, shut down by :meth:`close`). ``workers``: actors in the pool
    (default: one per GPU, else one per node). ``chunk_size``: permutations per task. ``gpu``: None =
    use GPUs when the cluster has some and the game is ONNX-backed and not forced to ``cpu``.
    ``max_replacements``: dead actors replaced before giving up (default 2 per worker + 2).
    Usable as a context manager and across several ``estimate`` calls (``backend=executor``).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        gpu: bool | None = None,
        max_replacements: int | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        self.address = address
        self.requested_workers = workers
        self.chunk_size = chunk_size
        self.gpu_request = gpu
        self.max_replacements = max_replacements
        self.start_timeout = start_timeout
        self.actors: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self.replaced = 0
        self.round_times: list[dict[str, Any]] = []  # per round: wall seconds and busy seconds per actor
        self._owns_ray = False
        self._gpu = False
        self._cpu_share = 1.0
        self._game: Game | None = None
        self._game_ref: Any = None
        self._key = 0

    # -- pool --------------------------------------------------------------------------------
    @property
    def workers(self) -> int:
        """Actors in the pool (0 before the first round)."""
        return len(self.actors)

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        try:
            if self.address is None:
                with _loopback_only():
                    ray.init(_node_ip_address="127.0.0.1", **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = self.address or "a new local instance"
            raise RuntimeSetupError(f"cannot start or join Ray at {where}: {exc}".splitlines()[0]) from None
        self._owns_ray = True

    def _wants_gpu(self, game: Game, gpus: float) -> bool:
        inst = getattr(game, "inst", None)
        request = getattr(inst, "provider_request", None)
        if self.gpu_request is not None:
            want = self.gpu_request
        elif inst is None or request == "cpu":
            want = False
        else:
            want = gpus >= 1
        if want and gpus < 1:
            raise RuntimeSetupError("backend ray: GPU workers asked for, but the Ray cluster has no GPU")
        if request == "cuda" and not want:
            raise RuntimeSetupError("backend ray: provider cuda asked for, but the Ray cluster has no GPU")
        return want

    def _start(self, game: Game) -> None:
        self._connect()
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        self._gpu = self._wants_gpu(game, gpus)
        if self._gpu:
            n = self.requested_workers or int(gpus)
            if n > gpus:
                raise RuntimeSetupError(f"backend ray: workers={n} but the cluster has {int(gpus)} GPU(s)")
            self._cpu_share = 1.0
        else:
            nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
            n = self.requested_workers or max(1, nodes)
            self._cpu_share = max(float(resources.get("CPU", 1)) / n, 0.01)
        self.actors = [self._new_actor() for _ in range(n)]
        self.infos = [{} for _ in range(n)]

    def _new_actor(self) -> Any:
        options: dict[str, Any] = {
            "num_cpus": self._cpu_share,
            "num_gpus": 1 if self._gpu else 0,
            "max_restarts": 0,
            "scheduling_strategy": "SPREAD",
        }
        env = _worker_runtime_env()
        if env is not None:
            options["runtime_env"] = env
        return _RemoteWorker.options(**options).remote(self._cpu_share, self._gpu)

    def _load(self, indices: list[int]) -> None:
        """Have actors ``indices`` load the current game; dead ones are replaced (within the budget)."""
        todo = list(indices)
        while todo:
            refs = {self.actors[i].load.remote(self._key, self._game_ref): i for i in todo}
            todo = []
            try:
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=self.start_timeout)
            except FAULTS:  # pragma: no cover - wait itself does not raise these
                ready = []
            if len(ready) < len(refs):
                self.close()
                raise RuntimeSetupError(
                    f"backend ray: {len(refs) - len(ready)} worker(s) did not start within "
                    f"{self.start_timeout:.0f} s (cluster resources: {ray.cluster_resources()})"
                )
            for ref, i in refs.items():
                try:
                    self.infos[i] = ray.get(ref)
                except FAULTS:
                    self._replace(i)
                    todo.append(i)
                except ray.exceptions.RayTaskError as exc:
                    self.close()
                    _reraise(exc, "a worker could not load the game")

    def _replace(self, i: int) -> None:
        budget = self.max_replacements if self.max_replacements is not None else 2 * len(self.actors) + 2
        if self.replaced >= budget:
            self.close()
            raise RuntimeSetupError(
                f"backend ray: {self.replaced} workers died; giving up (see the Ray logs)"
            )
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actors[i], no_restart=True)
        self.replaced += 1
        self.actors[i] = self._new_actor()

    def bind(self, game: Game) -> None:
        """Start the pool if needed and ship ``game`` to every actor (once per game)."""
        if self._game is game:
            return
        if not self.actors:
            self._start(game)
        self._key += 1
        self._game, self._game_ref = game, ray.put(game)
        self._load(list(range(len(self.actors))))

    # -- rounds ------------------------------------------------------------------------------
    def run_round(self, est: SamplingEstimator, indices: range) -> int:
        """Walk the round's chunks on the pool and fold them into ``est`` in index order."""
        t0 = time.perf_counter()
        self.bind(est.game)
        options = est.walk_options()
        summary = Summary.of(est)
        bounds = chunk_bounds(indices, self.chunk_size, est.unit)
        results: list[ChunkResult | None] = [None] * len(bounds)
        pending = deque(range(len(bounds)))
        idle = deque(range(len(self.actors)))
        inflight: dict[Any, tuple[int, int]] = {}
        busy = [0.0] * len(self.actors)
        while pending or inflight:
            while pending and idle:
                c, a = pending.popleft(), idle.popleft()
                ref = self.actors[a].walk.remote(self._key, *bounds[c], options, summary)
                inflight[ref] = (c, a)
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            c, a = inflight.pop(ref)
            try:
                results[c] = res = ray.get(ref)
                busy[a] += res.seconds
            except FAULTS:
                self._replace(a)
                self._load([a])
                pending.appendleft(c)
            except ray.exceptions.RayTaskError as exc:
                _reraise(exc, "a worker failed")
            idle.append(a)
        evaluations = 0
        for res in results:
            assert res is not None
            fold_chunk(est, res)
            evaluations += res.evaluations
        self.round_times.append({"wall": time.perf_counter() - t0, "busy": busy, "chunks": len(bounds)})
        return evaluations

    def describe(self) -> dict[str, Any]:
        """Backend, pool size and how it ran, for the result's metadata."""
        providers = sorted({str(i.get("provider")) for i in self.infos if i})
        return {
            "backend": self.name,
            "workers": self.workers,
            "ray": {
                "address": self.address,
                "chunk_size": self.chunk_size,
                "gpu": self._gpu,
                "cpu_share": self._cpu_share,
                "threads": sorted({i.get("threads") for i in self.infos if i}, key=str),
                "providers": providers,
                "nodes": len({i.get("node") for i in self.infos if i}),
                "replaced_workers": self.replaced,
            },
        }

    def close(self) -> None:
        """Kill the actors (and shut Ray down if this executor started it)."""
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor, no_restart=True)
        self.actors = []
        self._game = self._game_ref = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reraise(exc: Any, what: str) -> None:
    """Raise a worker's own exception (a game's DataError stays a DataError), else a one-line error."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Exception):
        raise cause from None
    first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    raise RuntimeSetupError(f"backend ray: {what}: {first}") from None
