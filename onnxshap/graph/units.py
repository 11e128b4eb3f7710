"""The unit table: which layers carry units, how many, and where each layer's mask sits."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

UNIT_KINDS = ("conv", "dense")
PLACEMENTS = ("after-chain", "after-conv")
REMOVALS = ("zero", "mean")  # what a removed unit outputs: nothing, or its mean activation
TABLE_VERSION = 1


@dataclass(frozen=True)
class UnitLayer:
    """One layer whose output channels (conv) or features (dense) are units."""

    layer: str  # unique, human-readable id: the node name (graph path prefixed inside subgraphs)
    op: str
    kind: str  # "conv" or "dense"
    graph: str  # "main", or the subgraph path such as "If_0/then_branch"
    channels: int
    channel_axis: int  # axis of the masked tensor that carries the units
    rank: int  # rank of the masked tensor
    mask_input: str  # name of the mask graph input
    masked_tensor: str  # original name of the tensor the mask multiplies (kept as the Mul's output)
    chain: tuple[str, ...]  # op types between the layer's output and the mask
    weight: str | None  # weight tensor name, for weight-norm baselines
    dtype: str  # numpy dtype name of the mask
    offset: int  # index of this layer's first unit in the flat unit vector
    batch_aligned: bool  # axis 0 of the masked tensor is the model's batch (stacking is valid)

    def mask_shape(self, batch: int = 1) -> tuple[int, ...]:
        shape = [1] * self.rank
        shape[0] = batch
        shape[self.channel_axis] = self.channels
        return tuple(shape)

    def unit_id(self, channel: int) -> str:
        return f"{self.layer}:{channel}"


@dataclass(frozen=True)
class SkippedLayer:
    """A candidate layer left out, with the reason (never guessed)."""

    layer: str
    op: str
    reason: str


@dataclass
class UnitTable:
    """All unit layers of an instrumented model, in a fixed order, plus the skipped ones."""

    layers: list[UnitLayer]
    skipped: list[SkippedLayer] = field(default_factory=list)
    placement: str = "after-chain"
    kinds: tuple[str, ...] = ("conv",)
    model_path: str | None = None
    model_sha256: str | None = None
    batch_coupling_ops: tuple[str, ...] = ()  # ops that mix items of a batch: stacking coalitions is invalid
    exclude: str | None = None  # the --exclude pattern the table was built with
    removal: str = "zero"  # what a removed unit outputs: "zero" or "mean" (its mean activation)

    @property
    def n_units(self) -> int:
        return sum(layer.channels for layer in self.layers)

    def __len__(self) -> int:
        return self.n_units

    def unit_ids(self) -> list[str]:
        return [layer.unit_id(c) for layer in self.layers for c in range(layer.channels)]

    def unit_layers(self) -> np.ndarray:
        """Index of the layer of every unit, shape [n_units]."""
        return np.repeat(np.arange(len(self.layers)), [layer.channels for layer in self.layers])

    def unit_channels(self) -> np.ndarray:
        """Channel index of every unit within its layer, shape [n_units]."""
        if not self.layers:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(layer.channels) for layer in self.layers])

    def index_of(self, unit_id: str) -> int:
        """Flat index of a unit id such as '/conv1/Conv:3'."""
        layer_name, sep, channel = unit_id.rpartition(":")
        if not sep or not channel.isdigit():
            raise KeyError(f"not a unit id (LAYER:CHANNEL): {unit_id!r}")
        for layer in self.layers:
            if layer.layer == layer_name:
                c = int(channel)
                if c >= layer.channels:
                    raise KeyError(f"layer {layer_name!r} has {layer.channels} channels, not {c + 1}")
                return layer.offset + c
        raise KeyError(f"no unit layer named {layer_name!r}")

    def to_dict(self) -> dict:
        return {
            "version": TABLE_VERSION,
            "model_path": self.model_path,
            "model_sha256": self.model_sha256,
            "placement": self.placement,
            "kinds": list(self.kinds),
            "n_units": self.n_units,
            "batch_coupling_ops": list(self.batch_coupling_ops),
            "exclude": self.exclude,
            "removal": self.removal,
            "layers": [{**asdict(layer), "chain": list(layer.chain)} for layer in self.layers],
            "skipped": [asdict(s) for s in self.skipped],
        }

    @classmethod
    def from_dict(cls, data: dict) -> UnitTable:
        layers = [UnitLayer(**{**d, "chain": tuple(d["chain"])}) for d in data["layers"]]
        return cls(
            layers=layers,
            skipped=[SkippedLayer(**s) for s in data.get("skipped", [])],
            placement=data.get("placement", "after-chain"),
            kinds=tuple(data.get("kinds", ("conv",))),
            model_path=data.get("model_path"),
            model_sha256=data.get("model_sha256"),
            batch_coupling_ops=tuple(data.get("batch_coupling_ops", ())),
            exclude=data.get("exclude"),
            removal=data.get("removal", "zero"),
        )

    def save(self, path: str | os.PathLike) -> Path:
        out = Path(path)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> UnitTable:
        return cls.from_dict(json.loads(Path(path).read_text()))


def units_path_for(model_path: str | os.PathLike) -> Path:
    """`masked.onnx` -> `masked.units.json`."""
    p = Path(model_path)
    return p.with_name(p.stem + ".units.json")
