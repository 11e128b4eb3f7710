"""Append a reduction to a model output, so a session returns only what a metric reads.

Kinds: ``argmax`` (the class index along axis 1: [B, K, ...] -> [B, ...], int64; ties go to the first
index, as numpy's argmax; a second output, sum(x - x), is NaN exactly when some score is NaN or inf,
so non-finite outputs are still caught), ``argmax-last`` (the same along the last axis, for sequence
outputs: [B, T, C] -> [B, T], the class of every time step) and ``mean-items`` (the mean over the items
of each stacked coalition: [k * N, ...] -> [k, M], float32, with M the product of the per-item dims; the
reshape target [k, N, -1] is fed through the input :data:`REDUCE_SHAPE_INPUT`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxshap.errors import ModelError

REDUCTIONS = ("argmax", "argmax-last", "mean-items")
REDUCE_SHAPE_INPUT = "onnxshap_reduce_shape"


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def _last_axis(model: onnx.ModelProto, src: onnx.ValueInfoProto) -> int:
    """The last axis of `src` for ArgMax: -1 from opset 11, else its rank - 1 (declared or inferred)."""
    if _opset(model) >= 11:
        return -1
    tensor = src.type.tensor_type
    if not tensor.HasField("shape") or not tensor.shape.dim:
        try:
            inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
        except Exception:  # inference fails on odd exports: then the rank is unknown
            inferred = model
        tensor = next(
            (
                v.type.tensor_type
                for v in [*inferred.graph.value_info, *inferred.graph.output]
                if v.name == src.name
            ),
            tensor,
        )
    if not tensor.HasField("shape") or not tensor.shape.dim:
        raise ModelError(f"cannot take the argmax over the last axis of {src.name!r}: its rank is unknown")
    return len(tensor.shape.dim) - 1


def append_reduction(model: onnx.ModelProto, output: str, kind: str) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of `model` whose outputs are `kind` applied to `output` (and, for argmax, the finiteness
    check); returns (model, output names)."""
    if kind not in REDUCTIONS:
        raise ModelError(f"unknown reduction {kind!r}; choose from {', '.join(REDUCTIONS)}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    if output not in {o.name for o in g.output}:
        raise ModelError(f"the model has no output {output!r}")
    name = f"{output}__onnxshap_{kind}"
    if kind in ("argmax", "argmax-last"):
        src = next(o for o in g.output if o.name == output)
        axis = 1 if kind == "argmax" else _last_axis(out, src)
        g.node.append(helper.make_node("ArgMax", [output], [name], axis=axis, keepdims=0, name=name))
        elem = TensorProto.INT64
        zero, check = f"{output}__onnxshap_zero", f"{output}__onnxshap_finite_check"
        g.node.append(helper.make_node("Sub", [output, output], [zero], name=zero))
        g.node.append(helper.make_node("ReduceSum", [zero], [check], keepdims=0, name=check))
        del g.output[:]
        g.output.append(helper.make_tensor_value_info(name, elem, None))
        g.output.append(helper.make_tensor_value_info(check, src.type.tensor_type.elem_type, None))
        return out, [name, check]
    else:
        src = next(o for o in g.output if o.name == output)
        x = output
        if src.type.tensor_type.elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
            x = f"{output}__onnxshap_float"
            g.node.append(helper.make_node("Cast", [output], [x], to=TensorProto.FLOAT, name=x))
        g.input.append(helper.make_tensor_value_info(REDUCE_SHAPE_INPUT, TensorProto.INT64, [3]))
        grouped = f"{output}__onnxshap_grouped"
        g.node.append(helper.make_node("Reshape", [x, REDUCE_SHAPE_INPUT], [grouped], name=grouped))
        if _opset(out) >= 18:
            axes = f"{output}__onnxshap_axes"
            g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), axes))
            g.node.append(helper.make_node("ReduceMean", [grouped, axes], [name], keepdims=0, name=name))
        else:
            g.node.append(helper.make_node("ReduceMean", [grouped], [name], axes=[1], keepdims=0, name=name))
        elem = src.type.tensor_type.elem_type
        elem = elem if elem == TensorProto.DOUBLE else TensorProto.FLOAT
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(name, elem, None))
    return out, [name]
