"""Compute backends of the thermal engine: Numba on the CPU, array code for a GPU (CuPy).

The engine's operations (enthalpy ↔ temperature, one explicit stage, the probe's ghost-fluid
flux, the running records) exist twice:

* :mod:`cryoneuro.thermal.kernels` — Numba loops, the CPU default (fastest on a CPU: one pass
  over memory per stage, each face flux computed once);
* :class:`ArrayKernels` here — the same equations written as whole-array expressions over an
  array module ``xp`` with the NumPy API. With ``xp = cupy`` they run on an NVIDIA GPU
  (the backend ``"cupy"``); with ``xp = numpy`` the identical code runs on the CPU
  (the backend ``"array"``), which is how the GPU path is tested on machines without a GPU:
  tests/test_thermal_backends.py checks it against the Numba kernels to round-off.

Only operations that NumPy and CuPy share are used (slicing, ``where``, ``clip``,
``bincount`` with weights, gather/scatter with unique indices), so the two array modules run
the same code. The equations are those of :mod:`cryoneuro.thermal.kernels` (its docstring).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from cryoneuro.errors import InputError
from cryoneuro.thermal import kernels as nk

BACKENDS = ("auto", "numba", "array", "cupy")


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy = importlib.import_module("cupy")
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:
        return False


def resolve(backend: str) -> str:
    """The backend to use: ``auto`` picks ``cupy`` when a GPU is present, else ``numba``."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)} (got '{backend}')")
    if backend == "auto":
        return "cupy" if gpu_available() else "numba"
    if backend == "cupy" and not gpu_available():
        raise InputError(
            "backend 'cupy' needs CuPy and an NVIDIA GPU "
            "(pip install cupy-cuda12x); use 'auto' to fall back to the CPU"
        )
    return backend


class NumbaKernels:
    """The CPU kernels, with the same interface as :class:`ArrayKernels`."""

    name = "numba"
    xp = np
    enthalpy_from_temperature = staticmethod(nk.enthalpy_from_temperature)
    conductivity_field = staticmethod(nk.conductivity_field)
    stage = staticmethod(nk.stage)
    probe_rates = staticmethod(nk.probe_rates)
    add_probe_rates = staticmethod(nk.add_probe_rates)
    record = staticmethod(nk.record)
    liquid_change = staticmethod(nk.liquid_change)

    @staticmethod
    def to_device(a: Any) -> Any:
        return a

    @staticmethod
    def to_host(a: Any) -> np.ndarray:
        return a


class ArrayKernels:
    """The kernels as array expressions over ``xp`` (NumPy or CuPy)."""

    def __init__(self, xp: Any, name: str) -> None:
        self.xp = xp
        self.name = name
        self._columns: dict[tuple[int, int], dict[int, Any]] = {}

    def to_device(self, a: Any) -> Any:
        return self.xp.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        return a.get() if hasattr(a, "get") else np.asarray(a)

    # -- material columns per cell, gathered once per (labels, table) -------------------------
    def _cols(self, lab: Any, mat: Any) -> dict[int, Any]:
        key = (id(lab), id(mat))
        cols = self._columns.get(key)
        if cols is None:
            cols = {
                c: mat[:, c][lab]
                for c in (
                    nk.TS,
                    nk.TL,
                    nk.CF,
                    nk.CU,
                    nk.HL,
                    nk.KF,
                    nk.KU,
                    nk.PERF,
                    nk.INV_CF,
                    nk.INV_CU,
                    nk.SLOPE_M,
                    nk.INV_DT,
                    nk.SINK,
                )
            }
            self._columns = {key: cols}  # one simulation at a time: keep only the current one
        return cols

    def _temperature(self, h: Any, c: dict[int, Any]) -> Any:
        xp = self.xp
        hl = c[nk.HL]
        return (
            c[nk.TS]
            + xp.minimum(h, 0.0) * c[nk.INV_CF]
            + xp.minimum(xp.maximum(h, 0.0), hl) * c[nk.SLOPE_M]
            + xp.maximum(h - hl, 0.0) * c[nk.INV_CU]
        )

    def _conductivity(self, t: Any, c: dict[int, Any]) -> Any:
        fl = self.xp.clip((t - c[nk.TS]) * c[nk.INV_DT], 0.0, 1.0)
        return c[nk.KF] + (c[nk.KU] - c[nk.KF]) * fl

    @staticmethod
    def _sub(c: dict[int, Any], sl: tuple) -> dict[int, Any]:
        return {k: v[sl] for k, v in c.items()}

    def enthalpy_from_temperature(self, temp: Any, lab: Any, mat: Any, out: Any) -> None:
        xp = self.xp
        c = self._cols(lab, mat)
        ts, tl = c[nk.TS], c[nk.TL]
        out[...] = xp.where(
            temp <= ts,
            c[nk.CF] * (temp - ts),
            xp.where(
                temp < tl, c[nk.HL] * (temp - ts) * c[nk.INV_DT], c[nk.HL] + c[nk.CU] * (temp - tl)
            ),
        )

    def conductivity_field(self, temp: Any, lab: Any, mat: Any, out: Any) -> None:
        out[...] = self._conductivity(temp, self._cols(lab, mat))

    def stage(
        self,
        h_out,
        h1,
        h2,
        h0,
        m0,
        t_old,
        k_old,
        t_new,
        k_new,
        lab,
        mat,
        c1,
        c2,
        c0,
        cl,
        cm,
        inv_dx2,
        source,
        use_source,
        extra,
        store_rate,
        n_chunks,
    ) -> None:
        """One explicit stage on the padded arrays (see :func:`kernels.stage`)."""
        xp = self.xp
        inner = (slice(1, -1),) * 3
        c = self._sub(self._cols(lab, mat), inner)
        acc = 0.0
        for axis in range(3):
            lo = [slice(1, -1)] * 3
            hi = [slice(1, -1)] * 3
            # flux through the face between cell i and i+1 along this axis, for i = 0 … n
            lo[axis], hi[axis] = slice(0, -1), slice(1, None)
            ka, kb = k_old[tuple(lo)], k_old[tuple(hi)]
            flux = 2.0 * ka * kb / (ka + kb + 1e-300) * (t_old[tuple(hi)] - t_old[tuple(lo)])
            first = [slice(None)] * 3
            second = [slice(None)] * 3
            first[axis], second[axis] = slice(1, None), slice(0, -1)
            acc = acc + flux[tuple(first)] - flux[tuple(second)]
        ti = t_old[inner]
        fl = xp.clip((ti - c[nk.TS]) * c[nk.INV_DT], 0.0, 1.0)
        rate = acc * inv_dx2 + fl * (c[nk.SINK] - c[nk.PERF] * ti)
        if use_source:
            rate = rate + source[inner]
        hn = c1 * h1[inner] + cl * rate
        if extra:
            hn = hn + c2 * h2[inner] + c0 * h0[inner] + cm * m0[inner]
        if store_rate:
            m0[inner] = rate
        h_out[inner] = hn
        tn = self._temperature(hn, c)
        t_new[inner] = tn
        k_new[inner] = self._conductivity(tn, c)

    def probe_rates(
        self, t, k, cells, inv_theta, which, probe_temp, probe_on, inv_dx2, out, per_probe
    ) -> None:
        """Ghost-fluid flux from the probe surfaces (see :func:`kernels.probe_rates`)."""
        xp = self.xp
        idx = (cells[:, 0], cells[:, 1], cells[:, 2])
        ti, ki = t[idx], k[idx]
        temp = xp.asarray(probe_temp)
        on = xp.asarray(probe_on)
        safe = xp.maximum(which, 0)
        valid = (which >= 0) & on[safe]
        q = xp.where(valid, ki[:, None] * (temp[safe] - ti[:, None]) * inv_theta * inv_dx2, 0.0)
        out[...] = q.sum(axis=1)
        sums = xp.bincount(safe.ravel(), weights=q.ravel(), minlength=len(per_probe))
        per_probe[:] = self.to_host(sums)[: len(per_probe)]

    def add_probe_rates(self, h, t, k, lab, mat, cells, rates, coef, m0, store) -> None:
        """``h += coef * rates`` at the probe-side cells; refresh their T and k."""
        idx = (cells[:, 0], cells[:, 1], cells[:, 2])  # unique cells: plain scatter is exact
        if store:
            m0[idx] = m0[idx] + rates
        c = {key: v[idx] for key, v in self._cols(lab, mat).items()}
        hn = h[idx] + coef * rates
        h[idx] = hn
        tn = self._temperature(hn, c)
        t[idx] = tn
        k[idx] = self._conductivity(tn, c)

    def liquid_change(self, t_a, t_b, lab, mat) -> float:
        """Largest change of liquid fraction (see :func:`kernels.liquid_change`)."""
        xp = self.xp
        inner = (slice(1, -1),) * 3
        c = self._sub(self._cols(lab, mat), inner)
        fa = xp.clip((t_a[inner] - c[nk.TS]) * c[nk.INV_DT], 0.0, 1.0)
        fb = xp.clip((t_b[inner] - c[nk.TS]) * c[nk.INV_DT], 0.0, 1.0)
        return float(xp.abs(fb - fa).max())

    def record(self, t, t_prev, kind, t_min, below, thresholds, dt_since) -> None:
        """Running minimum and time below each threshold (see :func:`kernels.record`)."""
        xp = self.xp
        live = kind != 2
        a, b = t_prev, t
        t_min[...] = xp.where(live & (b < t_min), b, t_min)
        with np.errstate(divide="ignore", invalid="ignore"):
            for q, thr in enumerate(self.to_host(thresholds).tolist()):
                a_in, b_in = a <= thr, b <= thr
                f = (thr - a) / xp.where(b != a, b - a, 1.0)
                part = xp.where(a_in & b_in, 1.0, xp.where(a_in, f, xp.where(b_in, 1.0 - f, 0.0)))
                below[q] += (dt_since * xp.where(live, part, 0.0)).astype(below.dtype)
        t_prev[...] = xp.where(live, b, t_prev)


def get_kernels(backend: str) -> NumbaKernels | ArrayKernels:
    """The kernel set of a resolved backend name."""
    name = resolve(backend)
    if name == "numba":
        return NumbaKernels()
    if name == "array":
        return ArrayKernels(np, "array")
    return ArrayKernels(importlib.import_module("cupy"), "cupy")
