"""Create ONNX Runtime sessions with onnxshap's defaults and clear errors."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import onnx

from onnxshap.errors import ModelError
from onnxshap.runtime.providers import check_active, import_ort, physical_cores, resolve_provider


@dataclass
class SessionInfo:
    """A session and the provider that actually runs it."""

    session: object
    provider: str  # "cpu" or "cuda": what ORT really uses
    threads: int
    cuda_graph: bool = False  # CUDA graph capture is on: inputs and outputs must keep their addresses


def make_session(
    model: onnx.ModelProto | str | os.PathLike,
    provider: str = "auto",
    threads: int | None = None,
    optimize: bool = True,
    external_data_dir: str | os.PathLike | None = None,
    provider_options: dict[str, str] | None = None,
    spin: bool = True,
) -> SessionInfo:
    """An InferenceSession on the chosen provider; `optimize=False` disables graph optimisations.

    `external_data_dir` is the folder external-data locations are relative to, for in-memory models;
    `provider_options` override the CUDA EP defaults (see `onnxshap.runtime.providers.CUDA_DEFAULTS`);
    `spin=False` for sessions that run only now and then (their idle threads then sleep at once).
    """
    ort = import_ort()
    choice = resolve_provider(provider, provider_options)
    opts = ort.SessionOptions()
    n_threads = threads or physical_cores()
    opts.intra_op_num_threads = n_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # failures are reported by us, in one line
    if not spin:
        # Idle intra-op threads spin by default, and the spinning of a session that runs only now and
        # then (a graph prefix once per data batch) steals the cores from the one in the hot loop.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if external_data_dir is not None:
        opts.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(external_data_dir)
        )
    source = str(model) if isinstance(model, str | os.PathLike) else model.SerializeToString()
    try:
        session = ort.InferenceSession(source, sess_options=opts, providers=choice.ort_providers())
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = Path(model).name if isinstance(model, str | os.PathLike) else "model"
        raise ModelError(f"ONNX Runtime cannot load {where}: {first}") from None
    running = check_active(choice, session.get_providers())
    return SessionInfo(
        session=session,
        provider=running,
        threads=n_threads,
        cuda_graph=running == "cuda" and choice.cuda_graph,
    )


def input_metas(session, names: Collection[str] | None = None, skip: Collection[str] = ()) -> list:
    """A session's input descriptions (onnxruntime ``NodeArg``: ``name``, ``shape``, ``type``), in the
    session's order: only those in ``names`` when given, never those in ``skip``. The one place that
    asks a session for its inputs."""
    return [m for m in session.get_inputs() if (names is None or m.name in names) and m.name not in skip]
