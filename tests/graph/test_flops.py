"""FLOPs per node and after each layer's mask (the floor of a per-layer leave-one-out cut)."""

from __future__ import annotations

from onnxshap import instrument
from onnxshap.graph.flops import flops_after
from tests import builders as B


def test_flops_after_each_mask_of_a_residual_block(tmp_path):
    inst = instrument(B.save(B.conv_bn_relu_residual(), tmp_path / "m.onnx"))
    total, after = flops_after(inst.model, inst.units.layers, {"x": (1, 2, 6, 6)})
    conv1 = 2 * (4 * 6 * 6) * (2 * 3 * 3)  # 2 FLOPs per multiply-add: output elements x inputs per output
    conv2 = 2 * (4 * 6 * 6) * (4 * 3 * 3)
    conv3 = 2 * (3 * 6 * 6) * 4
    assert total == conv1 + conv2 + conv3
    assert after == {"conv1": conv2 + conv3, "conv2": conv3, "conv3": 0}


def test_gemm_and_matmul_count_their_inner_dimension(tmp_path):
    inst = instrument(B.save(B.swish_and_dense(), tmp_path / "d.onnx"), units="conv,dense")
    total, after = flops_after(inst.model, inst.units.layers, {"x": (1, 1, 4, 4)})
    conv, dense, head = 2 * (3 * 4 * 4) * 9, 2 * 6 * 48, 2 * 4 * 6  # Gemm with transB: K is W's dim 1
    assert total == conv + dense + head
    assert after == {"conv": dense + head, "dense1": head, "head": 0}
