"""Issue 13, sessions: the review found that log-out and password reset did not end sessions,
cookies lacked ``Secure``, pages had no CSP or Referrer-Policy, ``/docs`` was public, and the
reset token reached the access log. Each is re-run here."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from fastapi.testclient import TestClient
from registry_helpers import PASSWORD, login
from sqlalchemy import select, text, update

from cryoneuro.registry.models import User, UserSession
from cryoneuro.registry.services import accounts
from cryoneuro.web import create_app
from cryoneuro.web.app import RedactTokens


def _sid(client: TestClient) -> str:
    import base64
    import json

    cookie = client.cookies["cryoneuro_session"]
    payload = cookie.rsplit(".", 2)[0]
    return json.loads(base64.b64decode(payload))["sid"]


def test_logout_ends_the_session_on_the_server(client) -> None:
    headers = login(client, "nurse")
    stolen = client.cookies["cryoneuro_session"]
    assert client.post("/api/logout", headers=headers).status_code == 200
    client.cookies.set("cryoneuro_session", stolen)  # a copy of the cookie kept before
    assert client.get("/api/participants").status_code == 401


def test_only_a_hash_of_the_token_is_stored(client) -> None:
    login(client, "nurse")
    sid = _sid(client)
    with client.registry.factory() as session:
        rows = list(session.scalars(select(UserSession)))
    assert [r.token_hash for r in rows] == [hashlib.sha256(sid.encode()).hexdigest()]
    assert rows[0].user_id == client.registry.users["nurse"]
    assert rows[0].revoked_at is None


def test_password_reset_and_deactivation_end_every_session(client) -> None:
    reg = client.registry
    login(client, "nurse")
    assert client.get("/api/participants").status_code == 200
    with reg.factory() as session:
        token = accounts.issue_reset_token(
            session, reg.settings, reg.actor("admin"), reg.users["nurse"]
        )
        accounts.reset_password(session, reg.settings, token, "Frozen-nerve 2026")
        session.commit()
    assert client.get("/api/participants").status_code == 401

    login(client, "investigator")
    with reg.engine.begin() as conn:  # deactivated directly: the session dies with the user
        conn.execute(update(User).where(User.username == "investigator").values(active=False))
    assert client.get("/api/participants").status_code == 401


def test_idle_and_absolute_timeouts(client) -> None:
    reg = client.registry
    login(client, "nurse")
    sid_hash = hashlib.sha256(_sid(client).encode()).hexdigest()
    now = dt.datetime.now(dt.UTC)

    def age(column: str, seconds: int) -> None:
        with reg.engine.begin() as conn:
            conn.execute(
                update(UserSession)
                .where(UserSession.token_hash == sid_hash)
                .values({column: now - dt.timedelta(seconds=seconds)})
            )

    age("last_seen_at", reg.settings.session_idle_s - 120)
    assert client.get("/api/participants").status_code == 200  # and the use is recorded
    with reg.factory() as session:
        seen = session.get(UserSession, sid_hash).last_seen_at
    assert (dt.datetime.now(dt.UTC) - seen.replace(tzinfo=dt.UTC)).total_seconds() < 120
    age("last_seen_at", reg.settings.session_idle_s + 1)
    response = client.get("/api/participants")
    assert response.status_code == 401
    assert "inactivity" in response.json()["detail"]

    login(client, "nurse")
    sid_hash = hashlib.sha256(_sid(client).encode()).hexdigest()
    age("created_at", reg.settings.session_max_age_s + 1)
    response = client.get("/api/participants")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_secure_cookie_by_default_and_headers_on_every_page(registry) -> None:
    settings = registry.settings.model_copy(update={"secure_cookies": True})
    settings = settings.with_keys(registry.settings.keys)
    assert type(settings).model_fields["secure_cookies"].default is True
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        response = client.post("/api/login", json={"username": "nurse", "password": PASSWORD})
        assert response.status_code == 200
        cookie = response.headers["set-cookie"].lower()
        assert "secure" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        for path in ("/login", "/", "/api/participants", "/static/registry.css", "/nowhere"):
            page = client.get(path)
            assert "default-src 'self'" in page.headers["content-security-policy"], path
            assert page.headers["referrer-policy"] == "no-referrer", path


def test_api_docs_need_a_login(client) -> None:
    assert client.get("/docs", follow_redirects=False).status_code == 303
    assert client.get("/openapi.json", follow_redirects=False).status_code in (303, 401)
    login(client, "monitor")
    assert client.get("/docs").status_code == 200
    assert "/api/participants" in client.get("/openapi.json").json()["paths"]


def test_reset_tokens_are_kept_out_of_the_access_log() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/reset-password/abc.DEF-123_x", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert "abc.DEF" not in record.getMessage()
    assert "/reset-password/[redacted]" in record.getMessage()


def test_session_table_in_sql(client) -> None:
    """Log-in writes one row; its token_hash is 64 hex characters (SHA-256)."""
    login(client, "stats")
    with client.registry.engine.connect() as conn:
        hashes = conn.execute(text("SELECT token_hash FROM user_session")).scalars().all()
    assert len(hashes) == 1
    assert len(hashes[0]) == 64
    assert int(hashes[0], 16) >= 0
