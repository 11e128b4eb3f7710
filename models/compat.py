"""Compatibility of real third-party exports: instrument each, check the invariant, print the README table.

    python -m models.compat            # fetches into the ignored cache, prints a Markdown table

Inputs are random but shaped as each model expects (recipes below); the light zoo's outputs are softmaxes of
constant weights, so their last unit layer's activation is read as an extra output to see removal at all.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from models.thirdparty import CATALOGUE, FetchError, fetch
from onnxshap.errors import OnnxShapError
from onnxshap.graph.loading import default_opset

_AUDIO = {"input": ((1, 512), "float"), "state": ((2, 1, 128), "zeros"), "sr": ((), 16000)}
RECIPES: dict[str, dict[str, tuple[tuple[int, ...], object]]] = {
    "ppocr_det": {"x": ((1, 3, 64, 64), "float")},
    "ppocrv6_det": {"x": ((1, 3, 64, 64), "float")},
    "ppocr_cls": {"x": ((2, 3, 48, 192), "float")},
    "ppocr_rec": {"x": ((1, 3, 48, 160), "float")},
    "ppocrv6_rec": {"x": ((1, 3, 48, 160), "float")},
    "ddddocr_det": {"images": ((1, 3, 416, 416), "float")},
    "ddddocr_ocr": {"input1": ((1, 1, 64, 128), "float")},
    "ddddocr_ocr_int8": {"input1": ((1, 1, 64, 128), "float")},
    "silero_vad": _AUDIO,
    "silero_vad_half": _AUDIO,
    "silero_vad_op15": _AUDIO,
    "silero_vad_op18": _AUDIO,
    "silero_vad_openvino": {"input": ((1, 576), "float"), "state": ((2, 1, 128), "zeros")},
    "silero_vad_sequence": {
        "input": ((2, 576), "float"),
        "h": ((1, 1, 128), "zeros"),
        "c": ((1, 1, 128), "zeros"),
    },
}


@dataclass
class CompatRow:
    """One model's outcome."""

    key: str
    producer: str
    opset: int
    conv_layers: int
    units: int
    outcome: str  # "ok", "FAIL: ...", "refused: ..."
    max_diff: float | None
    relative_diff: float | None


def make_inputs(key: str, session, skip: set[str], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs shaped for `key` (recipe), or from the session's shapes for the light zoo."""
    from onnxshap.runtime.verify import random_inputs

    if key not in RECIPES:
        return random_inputs(session, batch=1, seed=seed, skip=skip)
    rng = np.random.default_rng(seed)
    feeds = {}
    names = {m.name: m for m in session.get_inputs() if m.name not in skip}
    for name, (shape, kind) in RECIPES[key].items():
        if name not in names:
            continue
        if kind == "float":
            feeds[name] = rng.standard_normal(shape).astype(np.float32) * 0.5
        elif kind == "zeros":
            feeds[name] = np.zeros(shape, np.float32)
        else:
            feeds[name] = np.array(kind, dtype=np.int64)
    return feeds


def with_probe_output(path: Path, tensor: str, folder: Path) -> Path:
    """A copy of the model that also outputs `tensor` (to see removal behind a constant softmax)."""
    model = onnx.load(str(path))
    model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    out = folder / path.name
    onnx.save(model, str(out))
    return out


def check_model(key: str, path: Path, tolerance: float = 1e-5) -> CompatRow:
    """Instrument one model with optimisations off and compare all-ones masks with the original."""
    from onnxshap.instrumented import instrument
    from onnxshap.runtime.verify import check_invariant

    proto = onnx.load(str(path), load_external_data=False)
    producer = f"{proto.producer_name} {proto.producer_version}".strip() or CATALOGUE[key].producer
    opset = default_opset(proto)
    try:
        inst = instrument(path, optimize=False)
    except OnnxShapError as exc:
        return CompatRow(key, producer, opset, 0, 0, f"refused: {exc}", None, None)
    if key.startswith("light_"):
        with tempfile.TemporaryDirectory() as tmp:
            probe = with_probe_output(path, inst.units.layers[-1].masked_tensor, Path(tmp))
            inst = instrument(probe, optimize=False)
            return _compare(key, producer, opset, inst, tolerance, check_invariant)
    return _compare(key, producer, opset, inst, tolerance, check_invariant)


def _compare(key, producer, opset, inst, tolerance, check_invariant) -> CompatRow:
    masks = {layer.mask_input for layer in inst.units.layers}
    try:
        feeds = make_inputs(key, inst.evaluator.session, masks)
        report = check_invariant(inst, feeds)
    except OnnxShapError as exc:
        return CompatRow(
            key, producer, opset, len(inst.units.layers), inst.n_units, f"FAIL: {exc}", None, None
        )
    outcome = (
        "ok"
        if report.passes(tolerance)
        else ("FAIL: outputs differ" if report.relative_diff > tolerance else "FAIL: removal changes nothing")
    )
    if outcome == "ok":
        outcome = check_fast_path(inst, feeds)
    return CompatRow(
        key,
        producer,
        opset,
        len(inst.units.layers),
        inst.n_units,
        outcome,
        report.max_abs_diff,
        report.relative_diff,
    )


def check_fast_path(inst, feeds: dict[str, np.ndarray], coalitions: int = 3) -> str:
    """'ok' when the fast path (graph cut, bound batch) gives the whole model's outputs bit for bit."""
    coal = np.random.default_rng(0).random((coalitions, inst.n_units)) < 0.7
    coal[0] = True
    try:
        for output in inst.evaluator.output_names:
            want = inst.evaluate(coal, feeds, outputs=[output])[output]
            got = inst.fast_path(output, stack=1).bind(feeds).evaluate(coal)
            if not np.array_equal(got, want):
                return f"FAIL: fast path differs on {output} (max {np.abs(got - want).max():.2g})"
    except OnnxShapError as exc:
        return f"FAIL: fast path: {exc}"
    return "ok"


def table(rows: list[CompatRow]) -> str:
    """Markdown table for the README."""
    lines = [
        "| model | producer | opset | unit layers | units | outcome | max diff (rel.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = "" if r.max_diff is None else f"{r.max_diff:.1e} ({r.relative_diff:.1e})"
        lines.append(
            f"| {r.key} | {r.producer} | {r.opset} | {r.conv_layers} | {r.units} | {r.outcome} | {diff} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Instrument every catalogued third-party model.")
    parser.add_argument("keys", nargs="*", help="catalogue keys (default: all)")
    args = parser.parse_args()
    rows = []
    for key in args.keys or sorted(CATALOGUE):
        try:
            path = fetch(key)
        except FetchError as exc:
            print(f"skip {key}: {exc}")
            continue
        rows.append(check_model(key, path))
    print(table(rows))


if __name__ == "__main__":
    main()
