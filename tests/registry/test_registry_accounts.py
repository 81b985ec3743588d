"""Password reset links (one-time, time-limited, audited) and login rate limiting."""

from __future__ import annotations

import re

import pytest
from registry_helpers import PASSWORD, PUBLIC_URL, login
from sqlalchemy import select

from cryoneuro.registry.auth import (
    RESET_MAX_AGE_S,
    LoginRateLimitedError,
    LoginRateLimiter,
    check_password_rule,
    verify_password,
)
from cryoneuro.registry.errors import PermissionDeniedError, RegistryInputError
from cryoneuro.registry.models import AuditEntry, User
from cryoneuro.registry.services import accounts

NEW_PASSWORD = "Frozen-nerve 2026"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_window_and_success() -> None:
    """Issue 13: lockout is per (user name, address): 5 failures for alice from one address
    lock alice out there only: not alice elsewhere, not bob on the same (shared) address;
    50 failures of any names from one address (spraying) lock that address."""
    clock = Clock()
    limiter = LoginRateLimiter(max_failures=5, window_s=900, clock=clock, ip_max_failures=50)
    for _ in range(4):
        limiter.failure("alice", "10.0.0.1")
        clock.now += 10
    limiter.check("alice", "10.0.0.1")  # 4 failures: still allowed
    limiter.failure("alice", "10.0.0.1")
    with pytest.raises(LoginRateLimitedError) as info:
        limiter.check("alice", "10.0.0.1")
    assert info.value.status_code == 429
    assert info.value.retry_after == 900 - 40  # the oldest failure leaves the window
    limiter.check("alice", "10.0.0.9")  # the right alice, at her own machine
    limiter.check("bob", "10.0.0.1")  # the right bob, behind the same NAT address
    clock.now += 900 - 40
    limiter.check("alice", "10.0.0.1")  # the first failure has left the window
    limiter.failure("alice", "10.0.0.1")
    with pytest.raises(LoginRateLimitedError):
        limiter.check("alice", "10.0.0.1")
    limiter.success("alice", "10.0.0.1")  # a correct password clears that counter
    limiter.check("alice", "10.0.0.1")
    for n in range(45):  # spraying: one failure each for many names from one address
        limiter.failure(f"user{n}", "10.0.0.1")
    with pytest.raises(LoginRateLimitedError):
        limiter.check("carol", "10.0.0.1")  # 50 failures from the address in the window
    limiter.check("carol", "10.0.0.2")


def test_login_is_rate_limited_with_retry_after(client) -> None:
    clock = Clock()
    client.app.state.login_limiter = LoginRateLimiter(max_failures=5, window_s=900, clock=clock)
    for _ in range(5):
        wrong = client.post("/api/login", json={"username": "nurse", "password": "wrong"})
        assert wrong.status_code == 401
    limited = client.post("/api/login", json={"username": "nurse", "password": PASSWORD})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "900"
    assert "too many failed log-in attempts" in limited.json()["detail"]
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = client.post(
        "/login", data={"csrf_token": token, "username": "nurse", "password": PASSWORD}
    )
    assert form.status_code == 429
    assert form.headers["retry-after"] == "900"
    assert "try again in 15 minutes" in form.text
    clock.now += 901
    login(client, "nurse")  # the window has passed; success clears the user's counter
    limiter = client.app.state.login_limiter
    assert limiter.retry_after("nurse", "testclient") == 0


def test_password_rule() -> None:
    for bad, expected in [
        ("short1!", "at least 12"),
        ("123456789012!", "letters"),
        ("only letters here", "digit or symbol"),
        ("nurse-password-1", "user name"),
    ]:
        with pytest.raises(RegistryInputError, match=expected):
            check_password_rule(bad, "nurse")
    check_password_rule(NEW_PASSWORD, "nurse")


def test_reset_token_is_one_time_time_limited_and_audited(registry) -> None:
    clock = Clock(1_800_000_000.0)
    admin, nurse_id = registry.actor("admin"), registry.users["nurse"]
    with registry.factory() as session:
        with pytest.raises(PermissionDeniedError):
            accounts.issue_reset_token(
                session, registry.settings, registry.actor("monitor"), nurse_id
            )
        token = accounts.issue_reset_token(session, registry.settings, admin, nurse_id, clock)
        session.commit()
    with registry.factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "reset-link")).one()
        assert entry.username == "admin"
        assert entry.row_id == str(nurse_id)
        # expired
        clock.now += RESET_MAX_AGE_S + 1
        with pytest.raises(RegistryInputError, match="invalid, expired or already used"):
            accounts.reset_password(session, registry.settings, token, NEW_PASSWORD, clock)
        clock.now -= 2
        # tampered, or signed with another secret
        with pytest.raises(RegistryInputError):
            accounts.reset_password(
                session, registry.settings, token[:-2] + "xx", NEW_PASSWORD, clock
            )
        with pytest.raises(RegistryInputError, match="at least 12"):
            accounts.reset_password(session, registry.settings, token, "short", clock)
        accounts.reset_password(session, registry.settings, token, NEW_PASSWORD, clock)
        session.commit()
    with registry.factory() as session:
        user = session.get(User, nurse_id)
        assert verify_password(user.password_hash, NEW_PASSWORD)
        update = session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "app_user", AuditEntry.action == "update"
            )
        ).one()
        assert update.new_values == {"password_hash": "[redacted]"}
        assert "reset" in update.reason
        assert update.username == "nurse"
        with pytest.raises(RegistryInputError, match="already used"):  # one-time
            accounts.reset_password(session, registry.settings, token, "Another-pass 99", clock)


def test_reset_pages_and_api(client) -> None:
    headers = login(client, "admin")
    users = client.get("/admin/users")
    assert users.status_code == 200
    assert 'id="reset-nurse"' in users.text
    issued = client.post(
        f"/admin/users/{client.registry.users['nurse']}/reset-link",
        data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', users.text).group(1)},
        headers={"Host": "attacker.example"},
    )  # a spoofed Host is ignored
    link = re.search(r'id="reset-link" value="([^"]+)"', issued.text).group(1)
    assert link.startswith(PUBLIC_URL + "/reset-password/")
    api_link = client.post(
        f"/api/users/{client.registry.users['investigator']}/reset-link", headers=headers
    )
    assert api_link.status_code == 201
    assert api_link.json()["expires_in_s"] == RESET_MAX_AGE_S
    client.post("/api/logout", headers=headers)
    # the nurse (not logged in) opens the link
    path = link.removeprefix(PUBLIC_URL)
    page = client.get(path)
    assert page.status_code == 200
    assert "at least 12 characters" in page.text
    assert 'id="reset-username">nurse<' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    weak = client.post(path, data={"csrf_token": token, "password": "weak", "confirm": "weak"})
    assert weak.status_code == 422
    assert 'id="error-password"' in weak.text
    differ = client.post(
        path, data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"}
    )
    assert differ.status_code == 422
    assert 'id="error-confirm"' in differ.text
    done = client.post(
        path, data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 200
    assert "Password changed" in done.text
    assert client.get(path).status_code == 422  # used: the link is dead
    assert (
        client.post("/api/login", json={"username": "nurse", "password": NEW_PASSWORD}).status_code
        == 200
    )
    # API reset for the investigator; non-admins cannot issue links
    ok = client.post(
        "/api/password-reset", json={"token": api_link.json()["token"], "password": NEW_PASSWORD}
    )
    assert ok.status_code == 200
    assert ok.json()["username"] == "investigator"
    again = client.post(
        "/api/password-reset", json={"token": api_link.json()["token"], "password": NEW_PASSWORD}
    )
    assert again.status_code == 422
    assert again.json()["field"] == "token"
    nurse = client.post("/api/login", json={"username": "nurse", "password": NEW_PASSWORD})
    assert (
        client.post(
            f"/api/users/{client.registry.users['admin']}/reset-link",
            headers={"X-CSRF-Token": nurse.json()["csrf_token"]},
        ).status_code
        == 403
    )
    assert client.get("/admin/users").status_code == 403
