"""Fixtures: a migrated registry on SQLite (always) and on PostgreSQL (env URL or a throwaway
cluster started here), seeded with an RCT, a case series, two sites and one user per role."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import Registry, find_postgres_bin, make_registry

#: The PostgreSQL server programs (initdb, pg_ctl): CRYONEURO_PG_BIN, else discovered
#: (registry_helpers.find_postgres_bin: the newest /usr/lib/postgresql/<major>/bin, else
#: `pg_config --bindir`, else the directory of initdb on PATH), so any installed major works.
PG_BIN = find_postgres_bin()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster() -> tuple[str, callable]:
    """initdb + pg_ctl in a temp dir as the 'postgres' OS user (root cannot run postgres)."""
    base = Path(tempfile.mkdtemp(prefix="cryoneuro-pg-"))
    data = base / "data"
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_user,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(base / "log"),
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server: CRYONEURO_TEST_POSTGRES_URL, else a temporary cluster.

    Fails (never skips) under CI when neither works, so a CI run cannot pass without
    exercising PostgreSQL.
    """
    url = os.environ.get("CRYONEURO_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    problem = ""
    if PG_BIN is not None and (PG_BIN / "initdb").exists():
        try:
            url, stop = _start_cluster()
        except (subprocess.CalledProcessError, OSError, LookupError) as exc:
            problem = f"starting a temporary cluster failed: {exc}"
        else:
            try:
                yield url
            finally:
                stop()
            return
    else:
        problem = f"{PG_BIN}/initdb not found"
    message = (
        "PostgreSQL unavailable: set CRYONEURO_TEST_POSTGRES_URL (or CRYONEURO_PG_BIN) or "
        f"install the postgresql server package ({problem})"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the server for one test."""
    import psycopg

    name = "cn_" + uuid.uuid4().hex[:12]
    admin = postgres_server_url.replace("postgresql+psycopg://", "postgresql://")
    for _ in range(50):
        try:
            conn = psycopg.connect(admin, autocommit=True)
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Migrate and seed once (argon2 hashing is deliberately slow); tests copy the file."""
    path = tmp_path_factory.mktemp("template") / "registry.db"
    reg = make_registry(f"sqlite:///{path}")
    reg.engine.dispose()
    return path, dict(reg.users)


@pytest.fixture
def registry(sqlite_url: str, sqlite_template: tuple[Path, dict[str, int]]) -> Iterator[Registry]:
    source, users = sqlite_template
    target = Path(sqlite_url.removeprefix("sqlite:///"))
    shutil.copyfile(source, target)
    # the database's key file travels with it (owner-only, as keys.load_key_file demands)
    key_target = target.with_name(target.name + ".keys.json")
    key_target.write_bytes(source.with_name(source.name + ".keys.json").read_bytes())
    key_target.chmod(0o600)
    reg = make_registry(sqlite_url, seed=False)
    reg.users.update(users)
    yield reg
    reg.engine.dispose()


@pytest.fixture
def client(registry: Registry):
    """A TestClient on the app over the test registry."""
    from fastapi.testclient import TestClient

    from cryoneuro.web import create_app

    with TestClient(create_app(registry.settings)) as test_client:
        test_client.registry = registry  # type: ignore[attr-defined]
        yield test_client


@pytest.fixture
def pg_registry(postgres_url: str) -> Iterator[Registry]:
    reg = make_registry(postgres_url)
    yield reg
    reg.engine.dispose()


SERVE = "from cryoneuro.cli import registry_cmd; from cryoneuro.cli._app import app; app()"


class LiveServer:
    """`cryoneuro serve` in a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, registry: Registry, env: dict[str, str] | None = None) -> None:
        self.registry = registry
        self.extra_env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="cryoneuro-serve-", suffix=".log")[1])

    def start(self) -> None:
        import sys

        import httpx

        env = {
            **os.environ,
            "CRYONEURO_KEY_FILE": str(self.registry.settings.key_path()),
            "CRYONEURO_SECURE_COOKIES": "false",
            **self.extra_env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVE,
                "serve",
                "--db",
                self.registry.url,
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )  # a file, not a pipe: a full pipe would stall it
        deadline = time.monotonic() + 90  # generous: CI and shared machines can be loaded
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited: " + self.log.read_text(encoding="utf-8")[-2000:])
            try:
                if httpx.get(self.url + "/login", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start within 90 s")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


@pytest.fixture
def live_server(registry: Registry) -> Iterator[LiveServer]:
    server = LiveServer(registry)
    server.start()
    yield server
    server.stop()
    server.log.unlink(missing_ok=True)
