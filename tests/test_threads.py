"""Thread choice from the cores that are free (cryoneuro.thermal.threads).

Expectations: the counting rule on given per-core loads, the overrides, and that a run's result
does not depend on how many threads computed it (the stencil has no cross-cell reductions, so
the fields must agree to round-off whatever the chunking).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from cryoneuro.errors import InputError
from cryoneuro.thermal import Phase, ProbeGeometry, ThermalModel, constant, simulate, threads
from cryoneuro.thermal.geometry import Grid
from cryoneuro.tissue import get_tissue


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.setattr(threads, "_cached", None)
    monkeypatch.delenv("CRYONEURO_THREADS", raising=False)


def test_busy_cores_are_not_counted(monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu: [92.0, 4.0, 60.0, 10.0])
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert threads.free_cores() == 2
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 2})
    assert threads.free_cores() == 0  # both allowed cores are busy


def test_choice_is_bounded_cached_and_overridable(monkeypatch):
    calls = []

    def fake_free(sample_s=threads.SAMPLE_S):
        calls.append(1)
        return 0

    monkeypatch.setattr(threads, "free_cores", fake_free)
    # a 2-thread ceiling whatever an earlier test in this process left Numba at
    monkeypatch.setattr(threads.numba, "get_num_threads", lambda: 2)
    assert threads.choose_threads(now=100.0) == 1  # no free core: still one thread
    assert threads.choose_threads(now=100.0 + threads.CACHE_S / 2) == 1
    assert len(calls) == 1  # reused within the cache window
    threads.choose_threads(now=100.0 + 2 * threads.CACHE_S)
    assert len(calls) == 2
    monkeypatch.setenv("CRYONEURO_THREADS", "1")
    assert threads.choose_threads() == 1
    monkeypatch.setenv("CRYONEURO_THREADS", "two")
    with pytest.raises(InputError, match="CRYONEURO_THREADS"):
        threads.choose_threads()


def test_a_lowered_thread_count_is_never_raised_and_is_restored(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda sample_s=0: 64)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert threads.choose_threads() == 1
        with threads.run_threads(1) as n:
            assert n == 1
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


def test_result_does_not_depend_on_the_thread_count(monkeypatch):
    grid = Grid(shape=(24, 24, 30), voxel_mm=1.0)
    probe = ProbeGeometry((12.0, 12.0, 10.0), (0.0, 0.0, 1.0), 1.47, 8.0)
    model = ThermalModel(
        grid, np.zeros(grid.shape, np.uint8), [get_tissue("muscle")], [probe], [constant(-150)]
    )
    fields = []
    for n in ("1", "2"):
        monkeypatch.setenv("CRYONEURO_THREADS", n)
        fields.append(simulate(model, [Phase("freeze", 30.0)]).min_temperature_c)
    np.testing.assert_allclose(fields[0], fields[1], rtol=0, atol=1e-9)
