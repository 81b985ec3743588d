"""Parallel execution on Dask, shared by every step that fans out independent simulations.

Case sweeps and plan-uncertainty sweeps (:mod:`cryoneuro.sweep`), the planner's candidate
screening (:mod:`cryoneuro.planning.pipeline`) and cohort re-simulation (:mod:`cryoneuro.cohort`)
all run many independent tasks. This module holds the one piece of machinery they share, below all
of them in the layer contract (``[tool.importlinter]`` in ``pyproject.toml``): it used to live in
``cryoneuro.sweep``, which made ``planning`` and ``sweep`` import each other.

Each task is independent, so an answer does not depend on how many workers run it; Dask recomputes
a lost worker's tasks (2 retries). Dask is the optional ``scale`` extra
(``pip install "cryoneuro[scale]"``); without it these functions refuse with one line saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from cryoneuro.errors import InputError

SCALE_HINT = 'parallel runs need Dask: pip install "cryoneuro[scale]"'


def _distributed() -> Any:
    """The ``dask.distributed`` module, or an :class:`InputError` naming the extra to install."""
    try:
        import dask.distributed
    except ImportError:
        raise InputError(SCALE_HINT) from None
    return dask.distributed


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Any]:
    """A Dask client: on an existing scheduler (``tcp://host:port``) or on a local cluster of
    ``workers`` single-threaded worker processes (one simulation per core), closed on exit."""
    distributed = _distributed()
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if workers < 1:
        raise InputError("--workers must be at least 1")
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                f"--scheduler {scheduler}: cannot connect "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            host="127.0.0.1",
        )  # a free port: no clash
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(
    func: Callable[..., Any],
    arguments: Sequence[tuple],
    *,
    name: str = "task",
    scheduler: str | None = None,
    workers: int = 2,
    client: Any = None,
    row: Callable[[int, Any], dict] | None = None,
    partial: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Run ``func(*arguments[i])`` for every i on Dask; results in input order.

    Shared by case sweeps, plan-uncertainty sweeps and cohort re-simulation: each task is
    independent (so the answer does not depend on the workers), has 2 retries (a lost worker's
    tasks are recomputed), and, with ``row`` and ``partial``, its table row is appended to
    ``partial.csv`` as it arrives so an interrupted run keeps what it has.
    """
    as_completed = _distributed().as_completed

    if client is None:
        with dask_client(scheduler, workers) as own:
            return run_tasks(
                func, arguments, name=name, client=own, row=row, partial=partial, progress=progress
            )
    token = uuid.uuid4().hex[:12]  # unique keys: several runs may share one scheduler
    n = len(arguments)
    futures = {
        client.submit(func, *args, key=f"{name}-{token}-{i}", retries=2, pure=False): i
        for i, args in enumerate(arguments)
    }
    results: dict[int, Any] = {}
    for done, fut in enumerate(as_completed(futures), start=1):
        i = futures[fut]
        results[i] = fut.result()
        if partial is not None and row is not None:
            pd.DataFrame([row(i, results[i])]).to_csv(
                partial, mode="a", header=not partial.exists(), index=False
            )
        if progress:
            progress(done, n)
    return [results[i] for i in range(n)]
