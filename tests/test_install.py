"""The install: what the base dependencies run, and what an absent extra says.

The base install (``pip install cryoneuro``) must run ``simulate``, ``plan`` and ``demo``; the
registry (web app, database), Dask scaling and the GPU backend are extras. A command whose extra
is missing must answer with one line naming the extra and exit 2, never a traceback.

Two checks: (1) in this interpreter, with the extras' modules made unimportable
(``sys.modules[name] = None`` makes ``import name`` raise ``ModuleNotFoundError``, exactly as an
absent package does); (2) slow: the built wheel installed into a fresh virtual environment with
its base dependencies only, where the extras really are absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGISTRY_MODULES = ("fastapi", "starlette", "sqlalchemy", "alembic", "pydantic_settings", "argon2")
SCALE_MODULES = ("dask", "distributed")

# Every check starts a fresh interpreter (or builds and installs a wheel): the slow tier.
pytestmark = pytest.mark.slow

CASE = """
[domain]
size_mm = [10, 10, 12]
voxel_mm = 1.0
tissue = "muscle"

[[probes]]
tip_mm = [5, 5, 3]
direction = [0, 0, 1]
diameter_mm = 1.5
active_length_mm = 5
tip_temperature_c = -150

[protocol]
phases = [{ freeze_s = 10 }]

[solver]
backend = "array"
"""


def _cli_without(modules: tuple[str, ...], args: list[str], cwd: Path):
    """Run the CLI in a fresh interpreter in which ``modules`` cannot be imported."""
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from cryoneuro.cli import main\n"
        f"sys.argv = ['cryoneuro', *{args!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=600,
    )


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade", "--db", "sqlite:///registry.db"],
        ["user", "add", "alice", "--role", "administrator", "--db", "sqlite:///registry.db"],
        ["audit", "verify", "--db", "sqlite:///registry.db"],
        ["serve", "--dev", "--db", "sqlite:///registry.db"],
    ],
    ids=["db-upgrade", "user-add", "audit-verify", "serve"],
)
def test_registry_command_without_the_registry_extra_names_it(tmp_path, args) -> None:
    line = _one_line_error(_cli_without(REGISTRY_MODULES, args, tmp_path))
    assert "install cryoneuro[registry]" in line
    assert not (tmp_path / "registry.db").exists()  # nothing half-written


def test_sweep_without_the_scale_extra_names_it(tmp_path) -> None:
    case = tmp_path / "case.toml"
    case.write_text(CASE, encoding="utf-8")
    args = ["sweep", str(case), "--vary", "domain.tissue.perfusion=0:1", "--samples", "2"]
    line = _one_line_error(_cli_without(SCALE_MODULES, args, tmp_path))
    assert 'pip install "cryoneuro[scale]"' in line


def test_simulate_runs_without_registry_or_scale(tmp_path) -> None:
    case = tmp_path / "case.toml"
    case.write_text(CASE, encoding="utf-8")
    result = _cli_without(
        REGISTRY_MODULES + SCALE_MODULES, ["simulate", str(case), "--json", "--quiet"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert '"isotherms"' in result.stdout


def test_built_wheel_installs_with_base_dependencies_and_runs_the_demo() -> None:
    """Build the wheel, install it with its base dependencies only into a fresh venv (pip may
    use its cache or the package index), run ``cryoneuro demo`` there, and check a registry
    command names the missing extra.

    The venv lives in its own temporary folder, not pytest's ``tmp_path``: pytest keeps only
    the three newest base folders, so a concurrent pytest run could delete it mid-test.
    """
    with tempfile.TemporaryDirectory(prefix="cryoneuro-wheel-") as folder:
        _wheel_install_and_demo(Path(folder))


def _wheel_install_and_demo(tmp_path: Path) -> None:
    # A clean environment: with PYTHONPATH pointing at a source tree, pip would take the
    # package for installed already (its egg-info is there) and skip it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=600,
        env=env,
    )
    [wheel] = dist.glob("cryoneuro-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",  # byte-compile on import instead: only what the demo uses
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=1200,
        env=env,
    )
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        env=env,
    ).stdout.lower()
    assert "fastapi==" not in installed  # the extras are not in the base install
    assert "dask==" not in installed
    assert "simpleitk==" in installed  # imaging is

    demo = subprocess.run(
        [str(bin_dir / "cryoneuro"), "demo", "--out", str(tmp_path / "demo"), "--json"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=1800,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert '"probes"' in demo.stdout
    assert (tmp_path / "demo" / "report.html").is_file()

    db = subprocess.run(
        [str(bin_dir / "cryoneuro"), "db", "upgrade", "--db", "sqlite:///r.db"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    line = _one_line_error(db)
    assert "install cryoneuro[registry]" in line
