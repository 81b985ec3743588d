"""Issue 13, scoping and audit: the review's findings re-run.

- a monitor of site A read site B's whole trail through ``GET /api/audit``: now monitors see
  only their sites' entries (administrators everything), in the API, the page and audit.csv;
- log-ins (success and failure), exports and NHS-number views were not audited: now they are;
- audit rows could be altered or forged with the application's own database role: the trail
  is an HMAC chain and ``cryoneuro audit verify`` names the first altered, deleted or inserted
  entry after the database is tampered with directly in SQL (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json

import pytest
from registry_helpers import PASSWORD, enrolment, login
from sqlalchemy import select, text
from typer.testing import CliRunner

from cryoneuro.cli import registry_cmd  # noqa: F401  (registers the commands)
from cryoneuro.cli._app import app
from cryoneuro.registry.audit import verify_chain
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.models import AuditEntry, Participant, Site
from cryoneuro.registry.schemas import EnrolmentIn
from cryoneuro.registry.services import participants, setup


def _rbh_monitor(registry) -> None:
    with transaction(registry.factory) as session:
        setup.create_user(
            session,
            Actor.system(),
            username="rbhmonitor",
            password=PASSWORD,
            role="monitor",
            site_codes=["RBH"],
        )


def test_monitor_reads_only_their_sites_trail(client) -> None:
    reg = client.registry
    _rbh_monitor(reg)
    nurse = login(client, "nurse")
    rbh = client.post("/api/participants", json=enrolment("9434765919"), headers=nurse).json()
    leeds = login(client, "leedsnurse")
    lth = client.post(
        "/api/participants", json=enrolment("9990000018", site="LTH"), headers=leeds
    ).json()
    with reg.factory() as session:
        site_of = {s.code: s.id for s in session.scalars(select(Site))}

    login(client, "rbhmonitor")
    entries = client.get("/api/audit", params={"limit": 10000}).json()
    assert entries
    assert {e["site_id"] for e in entries} == {site_of["RBH"]}
    assert any(e["table_name"] == "participant" and e["row_id"] == str(rbh["id"]) for e in entries)
    assert not any(
        e["table_name"] == "participant" and e["row_id"] == str(lth["id"]) for e in entries
    )
    lines = client.get("/api/exports/audit.csv").text.splitlines()[1:]
    assert len(lines) >= len(entries)
    assert all(line.endswith(f",{site_of['RBH']}") for line in lines)
    page = client.get("/audit").text
    assert rbh["study_number"] in page  # in the participant's new values
    assert lth["study_number"] not in page
    assert "leedsnurse" not in page

    login(client, "admin")
    everything = client.get("/api/audit", params={"limit": 10000}).json()
    assert {site_of["RBH"], site_of["LTH"], None} <= {e["site_id"] for e in everything}


def test_logins_exports_and_nhs_views_are_audited(client) -> None:
    reg = client.registry
    bad = client.post("/api/login", json={"username": "nurse", "password": "wrong password 1"})
    assert bad.status_code == 401
    ghost = client.post("/api/login", json={"username": "nobody", "password": "x"})
    assert ghost.status_code == 401
    nurse = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(), headers=nurse).json()["id"]
    login(client, "investigator")
    summary = client.get(f"/api/participants/{pid}").json()
    assert summary["nhs_number"] == "9434765919"
    assert client.get("/api/exports/tidy.zip").status_code == 200
    with reg.factory() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        site = session.get(Participant, pid).site_id
    by_action = [(e.action, e.username) for e in entries]
    assert ("login-fail", "nurse") in by_action
    assert ("login-fail", "nobody") in by_action
    assert ("login", "nurse") in by_action
    assert ("login", "investigator") in by_action
    views = [e for e in entries if e.action == "view-nhs"]
    assert len(views) == 1
    assert views[0].username == "investigator"
    assert views[0].row_id == str(pid)
    assert views[0].site_id == site
    assert "9434765919" not in json.dumps(views[0].new_values)  # the number itself is not logged
    exports = [e for e in entries if e.action == "export"]
    assert [e.new_values for e in exports] == [{"export": "tidy.zip"}]
    # the failed attempt stores the name tried, never the password
    assert not any("wrong password" in json.dumps(e.new_values) for e in entries)


def _enrol_three(reg) -> list[int]:
    nurse = reg.actor("nurse")
    for nhs in ("9434765919", "9990000018", "9990000026"):
        with transaction(reg.factory) as session:
            participants.enrol(
                session, reg.settings, nurse, EnrolmentIn.model_validate(enrolment(nhs))
            )
    with reg.factory() as session:
        ids = list(session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))
        report = verify_chain(session, reg.settings.keys.audit_key)
    assert report.ok, report
    assert report.checked == len(ids), report
    return ids


TRIGGERS = {
    "sqlite": (
        "DROP TRIGGER audit_entry_no_update; DROP TRIGGER audit_entry_no_delete",
        "SELECT 1",
    ),
    "postgresql": (
        "ALTER TABLE audit_entry DISABLE TRIGGER USER",
        "ALTER TABLE audit_entry ENABLE TRIGGER USER",
    ),
}


def test_audit_verify_command(registry) -> None:
    """`cryoneuro audit verify`: exit 0 on an intact trail, 1 with the first problem after
    an entry is changed in SQL (triggers dropped first, as a database owner could)."""
    ids = _enrol_three(registry)
    runner = CliRunner()
    args = [
        "audit",
        "verify",
        "--db",
        registry.url,
        "--key-file",
        str(registry.settings.key_path()),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is True
    assert out["checked"] == len(ids)
    middle = ids[len(ids) // 2]
    with registry.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_entry_no_update")
        conn.execute(text(f"UPDATE audit_entry SET reason = 'nothing to see' WHERE id = {middle}"))
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"entry {middle} was altered (or replaced)" in result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_audit_verify_names_each_kind_of_tampering(backend, request) -> None:
    """One tampering per fresh trail, so each is the first problem verify meets."""
    reg = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    ids = _enrol_three(reg)
    disable, enable = TRIGGERS[backend]
    if backend == "sqlite":
        with reg.engine.begin() as conn:
            for sql in disable.split(";"):
                conn.exec_driver_sql(sql)
        disable = "SELECT 1"
    key = reg.settings.keys.audit_key

    def verify() -> str:
        with reg.factory() as session:
            return verify_chain(session, key).problem

    last = ids[-1]
    # inserted at the end, forging a plausible row without the key
    with reg.engine.begin() as conn:
        conn.exec_driver_sql(disable)
        conn.execute(
            text(
                "INSERT INTO audit_entry (id, occurred_at, user_id, username, action, table_name, "
                "row_id, old_values, new_values, reason, site_id, entry_hash) SELECT id + 1, "
                "occurred_at, user_id, username, action, table_name, row_id, old_values, "
                f"new_values, reason, site_id, entry_hash FROM audit_entry WHERE id = {last}"
            )
        )
        conn.exec_driver_sql(enable)
    assert (
        verify() == f"entry {last + 1} was inserted outside the registry (the trail ends "
        f"at entry {last})"
    )
    with reg.engine.begin() as conn:
        conn.exec_driver_sql(disable)
        conn.execute(text(f"DELETE FROM audit_entry WHERE id = {last + 1}"))
        conn.exec_driver_sql(enable)
    assert verify() is None
    # the last entry deleted: only the keyed head record notices
    with reg.engine.begin() as conn:
        conn.exec_driver_sql(disable)
        conn.execute(text(f"DELETE FROM audit_entry WHERE id = {last}"))
        conn.exec_driver_sql(enable)
    assert verify() == f"entry {last} was deleted (end of the trail)"
    # a middle entry deleted
    with reg.engine.begin() as conn:
        conn.exec_driver_sql(disable)
        conn.execute(text(f"DELETE FROM audit_entry WHERE id = {ids[1]}"))
        conn.exec_driver_sql(enable)
    assert verify() == f"entry {ids[1]} was deleted"
    # an altered first entry is reported first
    with reg.engine.begin() as conn:
        conn.exec_driver_sql(disable)
        conn.execute(text(f"UPDATE audit_entry SET username = 'someone else' WHERE id = {ids[0]}"))
        conn.exec_driver_sql(enable)
    assert verify() == f"entry {ids[0]} was altered (or replaced)"
