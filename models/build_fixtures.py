"""Build the small committed ONNX fixture models from scikit-learn's digits dataset.

Usage (from the repository root)::

    python models/build_fixtures.py torch                  # digits_cnn_torch.onnx, digits_resnet_torch.onnx
    /tmp/tfenv/bin/python models/build_fixtures.py keras   # digits_cnn_keras.onnx (any env with TF + tf2onnx)

Both commands write the same seeded stratified test split (``digits_test.npz`` NCHW and
``digits_test_nhwc.npz`` NHWC) and merge their entries into ``fixtures.json``. Every exported model is
checked with ``onnx.checker`` and its onnxruntime accuracy must equal the framework's accuracy.
torch / tensorflow are imported lazily so this module imports with neither installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent
MANIFEST = MODELS_DIR / "fixtures.json"
DATA_NCHW = "digits_test.npz"
DATA_NHWC = "digits_test_nhwc.npz"
SEED = 0
TEST_SIZE = 0.3
OPSET = 17
THREADS = 2


@dataclass(frozen=True)
class Split:
    """Seeded stratified digits split; images are NCHW float32 in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_split(seed: int = SEED) -> Split:
    """Load sklearn digits, scale to [0, 1] and split 70/30 stratified with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    return Split(
        np.ascontiguousarray(x_tr), np.ascontiguousarray(y_tr), np.ascontiguousarray(x_te), y_te.copy()
    )


def _write_npz_if_changed(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write ``x``/``y`` to ``path`` unless it already holds equal arrays (npz bytes embed timestamps)."""
    if path.exists():
        with np.load(path) as old:
            if (
                set(old.files) == {"x", "y"}
                and old["x"].dtype == x.dtype
                and old["y"].dtype == y.dtype
                and np.array_equal(old["x"], x)
                and np.array_equal(old["y"], y)
            ):
                return
    np.savez_compressed(path, x=x, y=y)


def save_test_split(split: Split) -> None:
    """Save the test split as NCHW (``digits_test.npz``) and NHWC (``digits_test_nhwc.npz``)."""
    _write_npz_if_changed(MODELS_DIR / DATA_NCHW, split.x_test, split.y_test)
    nhwc = np.ascontiguousarray(split.x_test.transpose(0, 2, 3, 1))
    _write_npz_if_changed(MODELS_DIR / DATA_NHWC, nhwc, split.y_test)


# ----------------------------------------------------------------------------------------------------------
# ONNX checks and summaries (framework independent)


def _dims(value_info: Any) -> list[int | str]:
    """Shape of a graph input/output as ints and symbolic names."""
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim
    ]


def summarize_onnx(path: Path) -> dict[str, Any]:
    """Op counts, conv units, dense layers, opset and I/O of a saved ONNX model."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: list(t.dims) for t in graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {vi.name: _dims(vi) for vi in [*inferred.value_info, *inferred.output]}
    conv_units = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = inits.get(node.input[1])
        filters = weight[0] if weight else shapes[node.output[0]][1]
        conv_units.append({"node": node.name, "filters": int(filters)})
    dense = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul") and n.input[1] in inits]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "op_counts": dict(sorted(Counter(n.op_type for n in graph.node).items())),
        "opset": int(opset),
        "input_name": graph.input[0].name,
        "input_shape": _dims(graph.input[0]),
        "output_name": graph.output[0].name,
        "output_shape": _dims(graph.output[0]),
        "conv_layers": len(conv_units),
        "conv_filters": sum(u["filters"] for u in conv_units),
        "conv_units": conv_units,
        "dense_layers": len(dense),
        "dense_nodes": dense,
        "size_bytes": path.stat().st_size,
    }


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """Run ``x`` through the model with onnxruntime on CPU (2 intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def verify_onnx(path: Path, x: np.ndarray, y: np.ndarray, framework_logits: np.ndarray) -> float:
    """Check the model and require ONNX argmax accuracy == framework accuracy; return the accuracy."""
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    logits = onnx_logits(path, x)
    acc_onnx = float((logits.argmax(1) == y).mean())
    acc_fw = float((framework_logits.argmax(1) == y).mean())
    flips = int((logits.argmax(1) != framework_logits.argmax(1)).sum())
    diff = float(np.abs(logits - framework_logits).max())
    print(
        f"  {path.name}: framework acc {acc_fw:.4f}, onnx acc {acc_onnx:.4f}, "
        f"max|dlogit| {diff:.2e}, argmax flips {flips}"
    )
    if acc_onnx != acc_fw:
        raise RuntimeError(f"{path.name}: onnx accuracy {acc_onnx} != framework accuracy {acc_fw}")
    if path.stat().st_size > 300_000:
        raise RuntimeError(f"{path.name} is {path.stat().st_size} bytes, fixtures must stay under 300 KB")
    return acc_onnx


def update_manifest(entries: list[dict[str, Any]]) -> None:
    """Merge ``entries`` into fixtures.json by name (other frameworks' entries are kept)."""
    existing: list[dict[str, Any]] = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else []
    merged = {e["name"]: e for e in existing}
    merged.update({e["name"]: e for e in entries})
    MANIFEST.write_text(json.dumps([merged[k] for k in sorted(merged)], indent=2) + "\n")


def make_entry(
    name: str, framework: str, exporter: str, layout: str, data: str, acc: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """Manifest entry for ``models/<name>.onnx`` (summary fields are read back from the saved file)."""
    file = f"{name}.onnx"
    summary = summarize_onnx(MODELS_DIR / file)
    return {
        "name": name,
        "file": file,
        "framework": framework,
        "exporter": exporter,
        "opset": summary.pop("opset"),
        "input_name": summary.pop("input_name"),
        "input_layout": layout,
        "data": data,
        "test_accuracy": round(acc, 6),
        "conv_layers": summary.pop("conv_layers"),
        "conv_filters": summary.pop("conv_filters"),
        "dense_layers": summary.pop("dense_layers"),
        **summary,
        **extra,
    }


# ----------------------------------------------------------------------------------------------------------
# PyTorch


def _torch_architectures() -> dict[str, Any]:
    """The two PyTorch architectures (classes, by fixture name)."""
    from torch import nn

    class DigitsCNN(nn.Module):
        """Plain CNN with a two-layer dense head."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
            self.relu3 = nn.ReLU()
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(32 * 4 * 4, 64)
            self.relu4 = nn.ReLU()
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x: Any) -> Any:
            x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
            x = self.flatten(self.relu3(self.conv3(x)))
            return self.fc2(self.relu4(self.fc1(x)))

    class ResBlock(nn.Module):
        """conv-bn-relu-conv-bn + shortcut (identity or 1x1 conv+bn projection), then relu."""

        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.proj: nn.Module | None = None
            if c_in != c_out:
                self.proj = nn.Sequential()
                self.proj.add_module("conv", nn.Conv2d(c_in, c_out, 1, bias=False))
                self.proj.add_module("bn", nn.BatchNorm2d(c_out))
            self.relu_out = nn.ReLU()

        def forward(self, x: Any) -> Any:
            out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            shortcut = x if self.proj is None else self.proj(x)
            return self.relu_out(out + shortcut)

    class DigitsResNet(nn.Module):
        """Tiny ResNet: BN stem, two residual blocks (16 -> 16, 16 -> 32), global average pool, linear."""

        def __init__(self) -> None:
            super().__init__()
            self.stem_conv = nn.Conv2d(1, 16, 3, padding=1, bias=False)
            self.stem_bn = nn.BatchNorm2d(16)
            self.stem_relu = nn.ReLU()
            self.block1 = ResBlock(16, 16)
            self.block2 = ResBlock(16, 32)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(32, 10)

        def forward(self, x: Any) -> Any:
            x = self.stem_relu(self.stem_bn(self.stem_conv(x)))
            x = self.block2(self.block1(x))
            return self.fc(self.flatten(self.gap(x)))

    return {"digits_cnn_torch": DigitsCNN, "digits_resnet_torch": DigitsResNet}


def _train_torch(model: Any, split: Split, epochs: int, seed: int) -> None:
    """Adam + cross-entropy, batch 32, seeded shuffling."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(split.x_train)
    y = torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 32):
            idx = perm[start : start + 32]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    model.eval()


def _strip_identity_initializers(path: Path) -> None:
    """Replace ``Identity(initializer)`` nodes (the exporter dedups equal tensors) by initializers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            arr = numpy_helper.to_array(inits[node.input[0]])
            model.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
        else:
            keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)
        onnx.save(model, str(path))


def build_torch(seed: int = SEED) -> list[dict[str, Any]]:
    """Train, export (TorchScript exporter, BN kept) and verify the PyTorch fixtures."""
    import torch

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    split = load_split(seed)
    save_test_split(split)
    epochs = {"digits_cnn_torch": 15, "digits_resnet_torch": 20}
    entries = []
    for offset, name in enumerate(epochs):
        torch.manual_seed(seed + offset)
        model = _torch_architectures()[name]()
        _train_torch(model, split, epochs[name], seed + offset)
        with torch.no_grad():
            fw_logits = model(torch.from_numpy(split.x_test)).numpy()
        path = MODELS_DIR / f"{name}.onnx"
        # Legacy TorchScript exporter; do_constant_folding=False keeps BatchNormalization nodes (not folded
        # into Conv) and keeps parameter names ("conv1.weight") for initializers.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
            torch.onnx.export(
                model,
                (torch.zeros(1, 1, 8, 8),),
                str(path),
                dynamo=False,
                export_params=True,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                training=torch.onnx.TrainingMode.EVAL,
                do_constant_folding=False,
            )
        _strip_identity_initializers(path)
        acc = verify_onnx(path, split.x_test, split.y_test, fw_logits)
        extra = {"framework_version": torch.__version__, "seed": seed + offset, "epochs": epochs[name]}
        exporter = "torch.onnx.export (TorchScript, dynamo=False, do_constant_folding=False)"
        entries.append(make_entry(name, "pytorch", exporter, "NCHW", DATA_NCHW, acc, extra))
    if "BatchNormalization" not in entries[1]["op_counts"]:
        raise RuntimeError("digits_resnet_torch lost its BatchNormalization nodes")
    return entries


# ----------------------------------------------------------------------------------------------------------
# Keras / TensorFlow


_TF2ONNX_SUFFIX = re.compile(r"^(?P<base>.+?__)(?P<num>\d+)(?P<tail>:\d+)?$")


def _canonicalize_tf2onnx_names(model: Any) -> None:
    """Make tf2onnx output byte-reproducible: renumber its counter names, call the batch dim "batch".

    tf2onnx names helper tensors/nodes ``<stem>__<counter>`` (``new_shape__46``, ``Transpose__40``); the counter
    differs between runs of the same conversion, so renumber those in graph order and name helper constants
    after their consumer. Its symbolic batch dimension (``unk__51``) is renamed ``batch`` as in the torch
    fixtures. Weights and graph structure are untouched.
    """
    graph = model.graph
    mapping: dict[str, str] = {}

    def rename(name: str) -> str:
        match = _TF2ONNX_SUFFIX.match(name)
        if not match:
            return name
        old = match["base"] + match["num"]
        if old not in mapping:
            mapping[old] = f"{match['base']}{len(mapping)}"
        return mapping[old] + (match["tail"] or "")

    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        vi.name = rename(vi.name)
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].dim_param.startswith("unk__"):
            dims[0].dim_param = "batch"
    # tf2onnx merges equal constants under either original name (const_axes / const_starts): name helper
    # constants after their first consumer instead, and store initializers sorted by name.
    generated = {t.name for t in graph.initializer if _TF2ONNX_SUFFIX.match(t.name)}
    by_consumer: dict[str, str] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name in generated and name not in by_consumer:
                by_consumer[name] = f"{node.name}/input{slot}"
        node.input[:] = [by_consumer.get(n, n) for n in node.input]
    inits = sorted(graph.initializer, key=lambda t: by_consumer.get(t.name, t.name))
    for tensor in inits:
        tensor.name = by_consumer.get(tensor.name, tensor.name)
    copies = [type(t)() for t in inits]
    for copy, tensor in zip(copies, inits, strict=True):
        copy.CopyFrom(tensor)
    del graph.initializer[:]
    graph.initializer.extend(copies)


def build_keras(seed: int = SEED) -> list[dict[str, Any]]:
    """Train, export (tf2onnx, NHWC input) and verify the Keras fixture."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    keras = tf.keras
    layers = keras.layers

    split = load_split(seed)
    save_test_split(split)
    x_train = np.ascontiguousarray(split.x_train.transpose(0, 2, 3, 1))
    x_test = np.ascontiguousarray(split.x_test.transpose(0, 2, 3, 1))

    inp = keras.Input((8, 8, 1), name="input")
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    h = layers.Conv2D(32, 3, padding="same", name="conv2")(h)
    h = layers.BatchNormalization(name="bn2")(h)
    h = layers.ReLU(name="relu2")(h)
    h = layers.MaxPooling2D(2, name="pool")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(64, activation="relu", name="fc1")(h)
    out = layers.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="digits_cnn")

    epochs = 20
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, split.y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    fw_logits = model.predict(x_test, batch_size=256, verbose=0)

    name = "digits_cnn_keras"
    path = MODELS_DIR / f"{name}.onnx"
    spec = (tf.TensorSpec((None, 8, 8, 1), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    _canonicalize_tf2onnx_names(proto)
    onnx.save(proto, str(path))
    acc = verify_onnx(path, x_test, split.y_test, fw_logits)
    extra = {
        "framework_version": f"tensorflow {tf.__version__}, keras {keras.__version__}",
        "seed": seed,
        "epochs": epochs,
        "output": "logits (no softmax)",
    }
    exporter = f"tf2onnx {tf2onnx.__version__} convert.from_keras (counter names renumbered)"
    return [make_entry(name, "keras", exporter, "NHWC", DATA_NHWC, acc, extra)]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``build_fixtures.py {torch,keras} [--seed N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=["torch", "keras"])
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    entries = build_torch(args.seed) if args.framework == "torch" else build_keras(args.seed)
    update_manifest(entries)
    for e in entries:
        print(
            f"{e['file']}: {e['size_bytes']} B, acc {e['test_accuracy']:.4f}, opset {e['opset']}, "
            f"ops {e['op_counts']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
