"""`activation_maps`: a unit's spatial map, the channel of its layer's masked tensor."""

from __future__ import annotations

import numpy as np
import pytest

from onnxshap.runtime.activation_maps import activation_maps
from tests.report.helpers import MODELS


@pytest.fixture(scope="module")
def inst():
    from onnxshap import instrument

    return instrument(MODELS / "digits_cnn_torch.onnx", units="conv,dense", provider="cpu")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.load(MODELS / "digits_test.npz")["x"][:5]


def test_maps_are_per_unit_spatial_and_agree_with_mean_activations(inst, x) -> None:
    from onnxshap.runtime.activations import mean_activations

    conv = [layer for layer in inst.units.layers if layer.kind == "conv"]
    units = [conv[0].offset + 3, conv[1].offset, conv[-1].offset + conv[-1].channels - 1]
    maps = activation_maps(inst, x, units)
    assert sorted(maps) == sorted(units)
    assert maps[units[0]].shape[0] == 5 and maps[units[0]].ndim == 3
    assert maps[units[-1]].shape[1] < maps[units[0]].shape[1]  # deeper layer, smaller map
    means = mean_activations(inst, x)
    for unit, m in maps.items():
        assert m.dtype == np.float32
        np.testing.assert_allclose(np.abs(m).mean(), means[unit], rtol=1e-5)


def test_non_spatial_units_are_left_out(inst, x) -> None:
    dense = next(layer for layer in inst.units.layers if layer.kind == "dense")
    maps = activation_maps(inst, {"input": x}, [dense.offset, 0])
    assert list(maps) == [0]
    assert activation_maps(inst, x, [dense.offset]) == {}
    with pytest.raises(IndexError):
        activation_maps(inst, x, [inst.n_units])
