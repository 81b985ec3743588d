"""How many threads a simulation should use: the cores that are actually free.

Why: the engine's parallel loops (Numba ``prange``) end every RKL2 stage at a barrier, so a run
is as slow as its slowest thread. When another process keeps one of two cores busy (a Dask
worker, CI, a browser), a two-thread run waits at every barrier for the thread that shares the
busy core and is **slower than one thread on the free core** (measured: 26.6 s against 20.7 s
single-threaded on the design case; issue 17). So before a run the engine counts the cores
that are idle now — their busy fraction over a short window, from ``psutil`` — and uses that
many threads (at least one, at most Numba's pool). The decision is cached for
``CACHE_S`` seconds, so the planner's many short runs do not each pay for the sampling window.

Overrides: ``CRYONEURO_THREADS=<n>`` fixes the count; a caller that has already lowered
Numba's thread count (a Dask worker sets one thread) is never raised.
"""

from __future__ import annotations

import functools
import os
import time
from contextlib import contextmanager

import numba

__all__ = [
    "BUSY_FRACTION",
    "CACHE_S",
    "choose_threads",
    "free_cores",
    "run_threads",
    "with_free_threads",
]

#: A core counts as busy when another process used more than this fraction of it.
BUSY_FRACTION = 0.5
#: Sampling window (s) and how long a decision is reused (s).
SAMPLE_S = 0.05
CACHE_S = 10.0

_cached: tuple[float, int] | None = None


def _pool() -> int:
    """Numba's thread pool size (the most threads a run can use)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def free_cores(sample_s: float = SAMPLE_S) -> int:
    """Cores of this process's CPU set that were less than half busy over ``sample_s``."""
    import psutil

    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    busy = psutil.cpu_percent(interval=sample_s, percpu=True)
    cores = [busy[i] for i in allowed if i < len(busy)] if allowed else busy
    return sum(1 for b in cores if b < 100.0 * BUSY_FRACTION)


def choose_threads(now: float | None = None) -> int:
    """Threads for the next run (see the module docstring)."""
    global _cached
    ceiling = numba.get_num_threads()
    env = os.environ.get("CRYONEURO_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            from cryoneuro.errors import InputError

            raise InputError(f"CRYONEURO_THREADS must be a positive integer (got {env!r})")
        return min(n, _pool())
    if ceiling <= 1:
        return 1
    now = time.monotonic() if now is None else now
    if _cached is None or now - _cached[0] > CACHE_S:
        try:
            _cached = (now, free_cores())
        except Exception:  # no psutil data on this platform: keep what Numba has
            _cached = (now, ceiling)
    return max(1, min(ceiling, _cached[1]))


@contextmanager
def run_threads(n: int | None = None):
    """Run the block with ``n`` Numba threads (default :func:`choose_threads`), then restore."""
    before = numba.get_num_threads()
    n = choose_threads() if n is None else n
    numba.set_num_threads(max(1, min(n, _pool())))
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(before)


def with_free_threads(fn):
    """Decorator: run ``fn`` inside :func:`run_threads` (the engine's :func:`simulate`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with run_threads():
            return fn(*args, **kwargs)

    return wrapper
