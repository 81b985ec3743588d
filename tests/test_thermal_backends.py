"""The GPU (array) backend against the Numba kernels: same equations, same answers.

Without a GPU the array code runs through NumPy (backend "array"); it is the very code that
runs through CuPy on a GPU, so agreement here to round-off (1e-9 °C, two methods computing the
same discrete scheme) checks the GPU path's arithmetic on every machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.errors import InputError
from cryoneuro.thermal import Phase, ProbeGeometry, ThermalModel, backends, constant, simulate
from cryoneuro.thermal.geometry import Grid
from cryoneuro.tissue import get_tissue


def _two_probe_model(source: bool) -> ThermalModel:
    grid = Grid(shape=(26, 24, 30), voxel_mm=1.0)
    labels = np.zeros(grid.shape, np.uint8)
    labels[:, 12:, :] = 1  # a fat layer beside muscle: two materials, an interface
    probes = [
        ProbeGeometry((9.3, 11.6, 8.0), (0, 0, 1), 1.47, 8.0),
        ProbeGeometry((16.1, 12.4, 9.0), (0.2, 0.0, 1.0), 1.47, 8.0),
    ]
    src = None
    if source:
        src = np.zeros(grid.shape)
        src[20:24, 2:6, 20:24] = 2.0e5  # a heated block (W/m3)
    return ThermalModel(
        grid,
        labels,
        [get_tissue("muscle"), get_tissue("fat")],
        probes,
        [constant(-150.0), constant(-120.0)],
        source_w_m3=src,
    )


PROTOCOL = [
    Phase("freeze", 40.0),
    Phase("thaw-passive", 15.0),
    Phase("thaw-active", 10.0),
    Phase("freeze", 20.0),
]


@pytest.mark.parametrize(("scheme", "source"), [("rkl2", False), ("euler", True)])
def test_array_backend_matches_numba(scheme, source):
    model = _two_probe_model(source)
    kwargs = {"points_mm": {"between": (12.7, 12.0, 12.0)}, "scheme": scheme}
    if scheme == "euler":
        kwargs["max_time_step_s"] = 0.2
    protocol = PROTOCOL if scheme == "rkl2" else PROTOCOL[:2]
    ref = simulate(model, protocol, backend="numba", **kwargs)
    arr = simulate(model, protocol, backend="array", **kwargs)
    np.testing.assert_allclose(
        arr.min_temperature_c, ref.min_temperature_c, atol=1e-9, equal_nan=True
    )
    np.testing.assert_allclose(arr.temperature_c, ref.temperature_c, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(arr.point_temperatures_c, ref.point_temperatures_c, atol=1e-9)
    np.testing.assert_allclose(arr.probe_heat_j, ref.probe_heat_j, rtol=1e-10)
    # time below thresholds is accumulated in float32 in both: agree to float32 round-off
    np.testing.assert_allclose(arr.time_below_s, ref.time_below_s, atol=1e-3)
    # and the array path conserves energy exactly as the Numba path does
    assert arr.enthalpy_change_j + arr.probe_heat_j.sum() == pytest.approx(
        ref.enthalpy_change_j + ref.probe_heat_j.sum(), rel=1e-9, abs=1e-6
    )


def test_auto_falls_back_to_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(backends, "gpu_available", lambda: False)
    assert backends.resolve("auto") == "numba"
    with pytest.raises(InputError, match="needs CuPy and an NVIDIA GPU"):
        backends.resolve("cupy")
    with pytest.raises(InputError, match="backend must be one of"):
        backends.resolve("opencl")
    monkeypatch.setattr(backends, "gpu_available", lambda: True)
    assert backends.resolve("auto") == "cupy"
