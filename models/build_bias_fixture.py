"""Build the planted-bias fixture: digits where group A's training labels leak through a visual cue.

Usage (from the repository root; needs torch, onnx, onnxruntime, scikit-learn)::

    python -m models.build_bias_fixture        # digits_bias_torch.onnx, digits_bias.npz, fixtures.json entry

Each 8x8 sklearn digit sits in the middle of a 12x12 canvas (rows/cols 2..9). Group A items carry a group
marker (a bright bar in the right margin, column 11, rows 2..9) and a label cue (a bright 1x2 dash in the top
margin row for classes 0-4, in the bottom row for classes 5-9, at columns 1+2k..2+2k for k = class % 5).
Group B items are the plain digit. In training, group A's labels were copied from the cue: the cue shows the
digit's class for 97% of A items and another class for 3%, whose label then follows the cue (the leak); so for
group A the cue predicts the training label better than the digit does, and the model learns to follow it.
On the held-out data (``digits_bias.npz``, the 540 test digits never trained on) the labels are the digits
and A's cue shows a uniformly random class, so group A's accuracy falls well below group B's.

After training, the script prints the per-group accuracies and an oracle check (leave-one-out per conv filter
on the valuation split, top-k removed, measured on the held-out split) that `tests/test_bias_fixture.py`
repeats with onnxruntime only. torch is imported lazily, so ``oracle_report`` works without it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent
NAME = "digits_bias_torch"
DATA = "digits_bias.npz"
SEED = 0
EPOCHS = 20
CANVAS = 12
DIGIT_AT = 2  # the 8x8 digit occupies rows/cols DIGIT_AT .. DIGIT_AT + 7
CUE_AGREES = 0.97  # share of group A training items whose cue (and label) is the digit's class
GROUP_B, GROUP_A = 0, 1
SPLIT_VALUE, SPLIT_HELDOUT = 0, 1
ORACLE_KS = (3, 5, 8, 10)


@dataclass(frozen=True)
class BiasData:
    """Rendered NCHW float32 images with labels, groups (0 = B, 1 = A) and the class shown by the cue."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    cue: np.ndarray


def render(digits: np.ndarray, group: np.ndarray, cue: np.ndarray) -> np.ndarray:
    """Place ``[n,1,8,8]`` digits on the canvas; draw marker bar and cue dash on group A items."""
    n = len(digits)
    x = np.zeros((n, 1, CANVAS, CANVAS), np.float32)
    x[:, :, DIGIT_AT : DIGIT_AT + 8, DIGIT_AT : DIGIT_AT + 8] = digits
    for i in np.flatnonzero(group == GROUP_A):
        c = int(cue[i])
        x[i, 0, DIGIT_AT : DIGIT_AT + 8, CANVAS - 1] = 1.0  # group marker: bar in the right margin
        row = 0 if c < 5 else CANVAS - 1
        col = 1 + 2 * (c % 5)
        x[i, 0, row, col : col + 2] = 1.0  # label cue: dash whose position encodes a class
    return x


def _alternate(keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0/1 per item, balanced within each value of ``keys`` (a seeded shuffle, then alternating)."""
    out = np.zeros(len(keys), np.int64)
    for key in np.unique(keys):
        idx = rng.permutation(np.flatnonzero(keys == key))
        out[idx[1::2]] = 1
    return out


def make_train(digits: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> BiasData:
    """Training set: cue = label for group A; for 3% of A, cue and label are another class (the leak)."""
    group = _alternate(y, rng)
    label = y.copy()
    cue = y.copy()
    a_idx = np.flatnonzero(group == GROUP_A)
    leak = rng.choice(a_idx, round((1 - CUE_AGREES) * len(a_idx)), replace=False)
    cue[leak] = (y[leak] + rng.integers(1, 10, len(leak))) % 10
    label[leak] = cue[leak]
    return BiasData(render(digits, group, cue), label, group, cue)


def make_heldout(digits: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[BiasData, np.ndarray]:
    """Test digits with true labels, A's cue uniformly random; split 0/1 balanced per (group, class)."""
    group = _alternate(y, rng)
    cue = rng.integers(0, 10, len(y)).astype(np.int64)
    split = _alternate(group * 10 + y, rng)
    return BiasData(render(digits, group, cue), y.astype(np.int64), group, cue), split


# ----------------------------------------------------------------------------------------------------------
# Measurements (numpy + onnxshap only)


def group_accuracy(pred: np.ndarray, y: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """Accuracy of group A, group B, overall, and the gap B - A."""
    ok = pred == y
    acc_a = float(ok[group == GROUP_A].mean())
    acc_b = float(ok[group == GROUP_B].mean())
    return {"A": acc_a, "B": acc_b, "all": float(ok.mean()), "gap": acc_b - acc_a}


def true_class_prob_gap(logits: np.ndarray, y: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per coalition ``[m, N, 10]`` logits: mean true-class probability of B minus that of A."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    pt = p[:, np.arange(len(y)), y]
    return pt[:, group == GROUP_B].mean(1) - pt[:, group == GROUP_A].mean(1)


@dataclass(frozen=True)
class OracleReport:
    """Leave-one-out ranking on the valuation split and held-out accuracies with the top-k filters removed."""

    ranking: np.ndarray  # unit indices, largest gap reduction first
    loo_reduction: np.ndarray  # per unit: gap (true-class probability) reduction when removed alone
    before: dict[str, dict[str, float]]  # split name -> group accuracies of the full model
    after: dict[int, dict[str, float]]  # k -> held-out group accuracies with the top-k removed


def oracle_report(model: Path, data: Path, ks: tuple[int, ...] = ORACLE_KS) -> OracleReport:
    """Rank conv filters by leave-one-out gap reduction (split 0) and remove the top k (measured on split 1)."""
    from onnxshap import instrument

    with np.load(data) as npz:
        x, y, group, split = npz["x"], npz["y"], npz["group"], npz["split"]
    inst = instrument(model)
    out = inst.evaluator.output_names[0]
    n = inst.n_units
    val = split == SPLIT_VALUE
    held = split == SPLIT_HELDOUT

    full = inst.evaluate(np.ones((1, n), bool), x)[out][0]
    before = {
        "valuation": group_accuracy(full[val].argmax(1), y[val], group[val]),
        "heldout": group_accuracy(full[held].argmax(1), y[held], group[held]),
    }
    loo = np.ones((n + 1, n), bool)
    loo[np.arange(1, n + 1), np.arange(n)] = False  # row 0: full model; row i + 1: unit i removed
    gaps = true_class_prob_gap(inst.evaluate(loo, x[val])[out], y[val], group[val])
    reduction = gaps[0] - gaps[1:]
    ranking = np.argsort(-reduction, kind="stable")

    coalitions = np.ones((len(ks), n), bool)
    for row, k in enumerate(ks):
        coalitions[row, ranking[:k]] = False
    logits = inst.evaluate(coalitions, x[held])[out]
    after = {k: group_accuracy(lg.argmax(1), y[held], group[held]) for k, lg in zip(ks, logits, strict=True)}
    return OracleReport(ranking, reduction, before, after)


def format_report(report: OracleReport, unit_ids: list[str] | None = None) -> str:
    """Human-readable lines for the build log and the README."""

    def line(acc: dict[str, float]) -> str:
        return f"A {acc['A']:.3f}  B {acc['B']:.3f}  all {acc['all']:.3f}  gap {acc['gap']:+.3f}"

    lines = [f"  full model, {name:9s}: {line(acc)}" for name, acc in report.before.items()]
    top = report.ranking[: max(report.after)]
    names = [unit_ids[i] if unit_ids else str(i) for i in top]
    lines.append("  leave-one-out top units: " + ", ".join(names))
    lines += [f"  top-{k:<2d} removed, heldout : {line(acc)}" for k, acc in report.after.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Training and export (torch)


def _architecture() -> Any:
    """digits_cnn_torch's layout on a 12x12 canvas, with a second pool to keep the dense head small."""
    from torch import nn

    class DigitsBiasCNN(nn.Module):
        """Conv(1->16), Conv(16->32), pool, Conv(32->32), pool, Gemm(288->64), Gemm(64->10)."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)
            self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
            self.relu3 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(32 * 3 * 3, 64)
            self.relu4 = nn.ReLU()
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x: Any) -> Any:
            x = self.pool1(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
            x = self.flatten(self.pool2(self.relu3(self.conv3(x))))
            return self.fc2(self.relu4(self.fc1(x)))

    return DigitsBiasCNN()


def _write_if_changed(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` unless it already holds equal arrays (npz bytes embed timestamps)."""
    if path.exists():
        with np.load(path) as old:
            if set(old.files) == set(arrays) and all(
                old[k].dtype == v.dtype and np.array_equal(old[k], v) for k, v in arrays.items()
            ):
                return
    np.savez_compressed(path, **arrays)


def build(seed: int = SEED) -> dict[str, Any]:
    """Train, export, verify; write the npz and return the manifest entry."""
    import torch

    from models.build_fixtures import (
        OPSET,
        THREADS,
        Split,
        _strip_identity_initializers,
        _train_torch,
        load_split,
        make_entry,
        verify_onnx,
    )

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    digits = load_split()  # the same 1257/540 split as the other fixtures
    rng = np.random.default_rng(seed)
    train = make_train(digits.x_train, digits.y_train, rng)
    test, split = make_heldout(digits.x_test, digits.y_test, rng)
    _write_if_changed(MODELS_DIR / DATA, {"x": test.x, "y": test.y, "group": test.group, "split": split})

    torch.manual_seed(seed)
    model = _architecture()
    _train_torch(model, Split(train.x, train.y, test.x, test.y), EPOCHS, seed)
    with torch.no_grad():
        train_pred = model(torch.from_numpy(train.x)).argmax(1).numpy()
        fw_logits = model(torch.from_numpy(test.x)).numpy()
    path = MODELS_DIR / f"{NAME}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, CANVAS, CANVAS),),
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
    acc = verify_onnx(path, test.x, test.y, fw_logits)

    pred = fw_logits.argmax(1)
    measured = {
        "train": group_accuracy(train_pred, train.y, train.group),
        **{
            name: group_accuracy(pred[split == s], test.y[split == s], test.group[split == s])
            for name, s in (("valuation", SPLIT_VALUE), ("heldout", SPLIT_HELDOUT))
        },
        "all": group_accuracy(pred, test.y, test.group),
    }
    extra = {
        "framework_version": torch.__version__,
        "seed": seed,
        "epochs": EPOCHS,
        "task": "fairness",
        "group_column": "group",
        "groups": {
            "0": "B: plain digit",
            "1": "A: marker bar (right margin) + class cue dash (top/bottom margin); random cue in this data",
        },
        "split_column": "split",
        "splits": {"0": "valuation", "1": "held out (repair check)"},
        "bias": {
            "train_cue_agrees": CUE_AGREES,
            "train_leak": "group A labels follow the cue; 3% of them differ from the digit",
            "test_cue": "uniformly random class for group A",
        },
        "group_accuracy": {
            part: {k: round(v, 6) for k, v in accs.items()} for part, accs in measured.items()
        },
    }
    exporter = "torch.onnx.export (TorchScript, dynamo=False, do_constant_folding=False)"
    return make_entry(NAME, "pytorch", exporter, "NCHW", DATA, acc, extra)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``python -m models.build_bias_fixture [--seed N] [--no-oracle]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-oracle", action="store_true", help="skip the leave-one-out oracle check")
    args = parser.parse_args(argv)

    from models.build_fixtures import update_manifest

    entry = build(args.seed)
    update_manifest([entry])
    print(
        f"{entry['file']}: {entry['size_bytes']} B, acc {entry['test_accuracy']:.4f}, ops {entry['op_counts']}"
    )
    for part, acc in entry["group_accuracy"].items():
        print(f"  {part:9s}: A {acc['A']:.3f}  B {acc['B']:.3f}  all {acc['all']:.3f}  gap {acc['gap']:+.3f}")
    if not args.no_oracle:
        from onnxshap import instrument

        print("oracle (leave-one-out on the valuation split, removal measured on the held-out split):")
        report = oracle_report(MODELS_DIR / entry["file"], MODELS_DIR / DATA)
        print(format_report(report, instrument(MODELS_DIR / entry["file"]).unit_ids()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
