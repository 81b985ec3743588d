"""Sweeps on Dask: reproducible whatever the workers, runnable on a separate scheduler, and
physically ordered (a colder probe never gives a smaller iceball)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoneuro.cli import app
from cryoneuro.errors import InputError
from cryoneuro.sweep import Variation, run_sweep, set_path

# Sweeps on a local Dask cluster: the slow tier.
pytestmark = pytest.mark.slow

CASE = tomllib.loads("""
[domain]
size_mm = [16, 16, 20]
voxel_mm = 1.0
tissue = "muscle"
[[probes]]
tip_mm = [8, 8, 5]
diameter_mm = 1.5
active_length_mm = 8
tip_temperature_c = -150
[protocol]
phases = [{ freeze_s = 30 }]
""")
VARY = [
    Variation("domain.tissue.perfusion", 1000, 8000),
    Variation("probes[0].tip_temperature_c", -185, -120),
]


def test_same_seed_same_results_with_one_or_two_workers():
    a = run_sweep(CASE, VARY, samples=6, seed=3, workers=1)
    b = run_sweep(CASE, VARY, samples=6, seed=3, workers=2)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 6
    assert a["iso0_diameter_mm"].gt(0).all()


def test_colder_probe_never_gives_a_smaller_iceball():
    t = run_sweep(CASE, [VARY[1]], samples=6, seed=1, workers=2).sort_values(
        "probes[0].tip_temperature_c"
    )
    assert np.all(np.diff(t["iso-20_diameter_mm"].to_numpy()) <= 1e-9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def separate_scheduler(n_workers: int = 1):
    """`dask scheduler` + `dask worker` started as separate processes on loopback; yields the
    scheduler address (shared by tests/test_sweep_plan.py and tests/test_cohort.py)."""
    from dask.distributed import Client

    port = _free_port()
    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert dask, "the dask command-line tool is missing from the environment"
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        time.sleep(3)
        worker = subprocess.Popen(
            [
                dask,
                "worker",
                address,
                "--nthreads",
                "1",
                "--nworkers",
                str(n_workers),
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with Client(address, timeout="20s") as c:
            c.wait_for_workers(n_workers, timeout=60)
        yield address
    finally:
        for proc in (worker, sched):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)


def test_runs_on_a_separately_started_scheduler():
    """`dask scheduler` + `dask worker` started as separate processes on loopback."""
    with separate_scheduler() as address:
        remote = run_sweep(CASE, VARY, samples=4, seed=5, scheduler=address)
    local = run_sweep(CASE, VARY, samples=4, seed=5, workers=1)
    pd.testing.assert_frame_equal(remote, local)


def test_bad_variations_are_one_line_errors(tmp_path):
    with pytest.raises(InputError):
        Variation.parse("probes[0].tip_temperature_c=-100")
    with pytest.raises(InputError):
        Variation.parse("x=5:1")
    with pytest.raises(InputError):
        set_path({"domain": {}}, "domian.voxel_mm", 1.0)
    case = tmp_path / "c.toml"
    case.write_text("[domain]\nsize_mm = [16, 16, 20]\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["sweep", str(case), "--vary", "nope.x=1:2", "--samples", "2", "--json"]
    )
    assert result.exit_code == 2
    assert "nope" in result.stderr
    assert result.stdout == ""
    result = CliRunner().invoke(app, ["sweep", "--samples", "2", "--json"])
    assert result.exit_code == 2
    assert "case file" in result.stderr
    assert result.stdout == ""
    result = CliRunner().invoke(app, ["sweep", str(case), "--samples", "2", "--json"])
    assert result.exit_code == 2
    assert "--vary" in result.stderr
