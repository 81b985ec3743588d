"""Suite-wide settings."""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    # Under pytest-xdist each worker gets one Numba thread, so two workers on two cores do not
    # oversubscribe the machine (the kernels are parallel over x-slabs).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import numba

        numba.set_num_threads(1)
