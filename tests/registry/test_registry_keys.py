"""Issue 13, critical: no built-in secret. The attacks of the review, re-run:

- a session cookie forged with the constant that used to be in the source reads nothing;
- the server refuses to start without a key file, with a malformed or world-readable one,
  and with another database's keys (one line each, exit 2), unless ``--dev`` (loud warning);
- randomisation lists and NHS-number hashes depend on the key file, not on the source.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from registry_helpers import enrolment, login, make_registry
from sqlalchemy import select
from typer.testing import CliRunner

from cryoneuro.cli import registry_cmd  # noqa: F401  (registers the commands)
from cryoneuro.cli._app import app
from cryoneuro.registry.keys import (
    KEY_NAMES,
    KeyFileError,
    RegistryKeys,
    load_key_file,
    write_key_file,
)
from cryoneuro.registry.migrate import upgrade
from cryoneuro.registry.models import RegistrySetting
from cryoneuro.registry.randomisation import permuted_block
from cryoneuro.registry.settings import RegistrySettings

#: The constant the registry signed sessions with before issue 13 (the review's forgery).
OLD_SOURCE_SECRET = "cryoneuro-development-secret-change-me"


def _one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("cryoneuro: error: "), result.output
    return lines[0]


def test_keys_init_writes_owner_only_file_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "conf" / "keys.json"
    result = runner.invoke(app, ["keys", "init", "--key-file", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = json.loads(path.read_text())
    assert set(KEY_NAMES) <= set(body)
    assert all(len(base64.urlsafe_b64decode(body[name])) == 32 for name in KEY_NAMES)
    assert len({body[name] for name in KEY_NAMES}) == len(KEY_NAMES)  # independent keys
    before = path.read_bytes()
    line = _one_line_error(runner.invoke(app, ["keys", "init", "--key-file", str(path)]))
    assert "already exists" in line
    assert path.read_bytes() == before


def test_db_upgrade_creates_keys_beside_sqlite_and_stores_only_a_fingerprint(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    key_path = Path(out["key_file"])
    assert out["key_file_created"]
    assert key_path == tmp_path / "reg.db.keys.json"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    keys = load_key_file(key_path)
    reg = make_registry(url, seed=False)
    with reg.factory() as session:
        stored = " ".join(s.value for s in session.scalars(select(RegistrySetting)))
    reg.engine.dispose()
    assert keys.fingerprint() in stored
    for name in KEY_NAMES:  # no key in any encoding is in the database
        raw = getattr(keys, name)
        for text in (
            raw.hex(),
            base64.urlsafe_b64encode(raw).decode(),
            base64.b64encode(raw).decode(),
        ):
            assert text not in stored


def test_serve_refuses_without_keys_and_with_bad_or_foreign_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    missing = tmp_path / "missing.json"
    line = _one_line_error(runner.invoke(app, ["serve", "--db", url, "--key-file", str(missing)]))
    assert "no registry key file" in line
    assert "cryoneuro keys init" in line
    assert "--dev" in line

    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    good = tmp_path / "reg.db.keys.json"

    malformed = tmp_path / "malformed.json"
    malformed.write_text("{not json")
    malformed.chmod(0o600)
    assert "not valid JSON" in _one_line_error(
        runner.invoke(app, ["serve", "--db", url, "--key-file", str(malformed)])
    )

    short = tmp_path / "short.json"
    body = json.loads(good.read_text())
    body["identifier_key"] = base64.urlsafe_b64encode(b"x" * 16).decode()
    short.write_text(json.dumps(body))
    short.chmod(0o600)
    assert "'identifier_key' is not 32 bytes" in _one_line_error(
        runner.invoke(app, ["serve", "--db", url, "--key-file", str(short)])
    )

    good.chmod(0o644)
    assert "readable by others" in _one_line_error(runner.invoke(app, ["serve", "--db", url]))
    good.chmod(0o600)

    foreign = tmp_path / "foreign.json"
    write_key_file(foreign)
    line = _one_line_error(
        runner.invoke(app, ["serve", "--db", url, "--no-upgrade", "--key-file", str(foreign)])
    )
    assert "does not belong to this database" in line
    assert "session_key" in line
    # the same refusal from `db upgrade` and from the app factory
    assert "does not belong" in _one_line_error(
        runner.invoke(app, ["db", "upgrade", "--db", url, "--key-file", str(foreign)])
    )
    from cryoneuro.web import create_app

    with pytest.raises(KeyFileError, match="does not belong"):
        create_app(RegistrySettings(db_url=url, key_file=foreign))


def test_legacy_database_refuses_an_identifier_key_that_cannot_read_it(registry) -> None:
    """A database from before the fingerprint, holding NHS numbers: only the key that
    encrypted them is accepted (else duplicate detection would silently stop working)."""
    from cryoneuro.registry.database_keys import check_database_keys
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.schemas import EnrolmentIn
    from cryoneuro.registry.services import participants

    with transaction(registry.factory) as session:
        participants.enrol(
            session,
            registry.settings,
            registry.actor("nurse"),
            EnrolmentIn.model_validate(enrolment()),
        )
    with registry.engine.begin() as conn:  # forget the fingerprint, as before migration 0004
        conn.execute(RegistrySetting.__table__.delete())
    other = RegistryKeys.generate()
    with registry.factory() as session, pytest.raises(KeyFileError, match="cannot read the NHS"):
        check_database_keys(session, other, "other.json")
    with registry.factory() as session:
        assert check_database_keys(session, registry.settings.keys, "k.json") == "registered"


def test_cookie_forged_with_the_old_source_constant_reads_nothing(client) -> None:
    """The review forged an administrator's session with the constant from the source."""
    from itsdangerous import TimestampSigner

    admin_id = client.registry.users["admin"]
    payload = base64.b64encode(json.dumps({"user_id": admin_id}).encode())
    for secret in (OLD_SOURCE_SECRET, "test-secret"):
        cookie = TimestampSigner(secret).sign(payload).decode()
        client.cookies.set("cryoneuro_session", cookie)
        assert client.get("/api/participants").status_code == 401
    client.cookies.clear()
    login(client, "admin")
    assert client.get("/api/participants").status_code == 200


def test_randomisation_lists_depend_on_the_key_file_not_the_source() -> None:
    """Two key files give unrelated lists: 200 blocks of the same stratum agree no more
    often than chance (two independent shuffles of [A, A, B, B] agree 1/6 of the time; a
    shared seed would agree every time)."""
    arms = [("cryo", 1), ("steroid", 1)]
    first, second = RegistryKeys.generate(), RegistryKeys.generate()
    same = sum(
        permuted_block(first.randomisation_key, 1, 1, b, arms)
        == permuted_block(second.randomisation_key, 1, 1, b, arms)
        for b in range(1, 201)
    )
    assert same < 100
    # and the same key reproduces its own list (stored lists can be audited against it)
    assert all(
        permuted_block(first.randomisation_key, 1, 1, b, arms)
        == permuted_block(first.randomisation_key, 1, 1, b, arms)
        for b in range(1, 20)
    )


def test_serve_dev_warns_loudly_and_refuses_a_database_with_keys(tmp_path: Path) -> None:
    import socket

    import httpx

    url = f"sqlite:///{tmp_path / 'dev.db'}"
    upgrade(url)  # migrated, no keys registered
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    env = {**os.environ, "CRYONEURO_SECURE_COOKIES": "false"}
    env.pop("CRYONEURO_KEY_FILE", None)
    code = "from cryoneuro.cli import registry_cmd; from cryoneuro.cli._app import app; app()"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--dev", "--db", url, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("dev server did not start: " + log.read_text()[-2000:])
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert "WARNING: --dev: ephemeral random keys" in log.read_text()
    assert not (tmp_path / "dev.db.keys.json").exists()  # nothing written to disk

    # once the database has keys, --dev is refused (throwaway keys never mix in)
    assert CliRunner().invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    line = _one_line_error(CliRunner().invoke(app, ["serve", "--dev", "--db", url]))
    assert "--dev refused" in line


def test_rotating_the_session_key_ends_sessions_and_keeps_the_data(client) -> None:
    from cryoneuro.registry.audit import verify_chain
    from cryoneuro.registry.models import AuditEntry
    from cryoneuro.web import create_app

    reg = client.registry
    h = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(), headers=h).json()["id"]
    before = load_key_file(reg.settings.key_path())
    result = CliRunner().invoke(
        app, ["keys", "rotate-session", "--db", reg.url, "--key-file", str(reg.settings.key_path())]
    )
    assert result.exit_code == 0, result.output
    after = load_key_file(reg.settings.key_path())
    assert after.session_key != before.session_key
    assert (after.identifier_key, after.randomisation_key, after.audit_key) == (
        before.identifier_key,
        before.randomisation_key,
        before.audit_key,
    )
    assert stat.S_IMODE(reg.settings.key_path().stat().st_mode) == 0o600
    # the old cookie is dead (revoked, and signed with the old key); the data are readable
    assert client.get("/api/participants").status_code == 401
    from fastapi.testclient import TestClient

    settings = RegistrySettings(
        db_url=reg.url, key_file=reg.settings.key_path(), secure_cookies=False
    )
    with TestClient(create_app(settings)) as fresh:
        login(fresh, "investigator")
        assert fresh.get(f"/api/participants/{pid}").json()["nhs_number"] == "9434765919"
    with reg.factory() as session:
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "key-rotate"))
        assert verify_chain(session, after.audit_key).ok
    # the previous key file no longer fits this database
    old_copy = reg.settings.key_path().with_name("old.json")
    write_key_file(old_copy, before)
    with pytest.raises(KeyFileError, match="session_key"):
        create_app(RegistrySettings(db_url=reg.url, key_file=old_copy))
