"""Issue 13, administration: studies, sites, users, roles, memberships and deactivation
without Python or SQL: over the API (the web app's JSON side) and the CLI, each audited."""

from __future__ import annotations

from registry_helpers import enrolment, login
from sqlalchemy import select
from typer.testing import CliRunner

from cryoneuro.cli import registry_cmd  # noqa: F401  (registers the commands)
from cryoneuro.cli._app import app
from cryoneuro.registry.models import AuditEntry, User

NEW_PW = "Glacier-probe 42"


def test_a_study_with_two_sites_and_four_users_through_the_api(client) -> None:
    h = login(client, "admin")
    for code, name in (("NTH", "North Hospital"), ("STH", "South Hospital")):
        r = client.post("/api/admin/sites", json={"code": code, "name": name}, headers=h)
        assert r.status_code == 201, r.text
    r = client.post(
        "/api/admin/studies",
        headers=h,
        json={
            "code": "FROST",
            "title": "Cryoablation vs excision",
            "design": "rct",
            "test_study": True,
            "arms": [
                {"code": "cryo", "label": "Cryoablation"},
                {"code": "excision", "label": "Surgical excision"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["arms"] == ["cryo", "excision"], r.text
    for site in ("NTH", "STH"):
        r = client.post("/api/admin/studies/FROST/sites", json={"site_code": site}, headers=h)
        assert r.status_code == 201, r.text
    assert r.json()["sites"] == ["NTH", "STH"]
    users = {}
    for name, role, sites in (
        ("pi_north", "investigator", ["NTH"]),
        ("nurse_south", "data_entry", ["STH"]),
        ("cra", "monitor", ["NTH", "STH"]),
        ("analyst", "statistician", []),
    ):
        r = client.post(
            "/api/admin/users",
            headers=h,
            json={"username": name, "password": NEW_PW, "role": role, "sites": sites},
        )
        assert r.status_code == 201, r.text
        assert r.json()["sites"] == sites, r.text
        users[name] = r.json()["id"]
    weak = client.post(
        "/api/admin/users",
        headers=h,
        json={"username": "weak", "password": "password", "role": "monitor"},
    )
    assert weak.status_code == 422
    assert weak.json()["field"] == "password"

    # the south nurse enrols and randomises at her site only
    nurse = client.post("/api/login", json={"username": "nurse_south", "password": NEW_PW})
    nh = {"X-CSRF-Token": nurse.json()["csrf_token"]}
    pid = client.post(
        "/api/participants", headers=nh, json=enrolment(study="FROST", site="STH")
    ).json()["id"]
    assert client.post(f"/api/participants/{pid}/randomise", headers=nh).json()["arm_code"] in (
        "cryo",
        "excision",
    )
    assert (
        client.post(
            "/api/participants", headers=nh, json=enrolment("9990000018", study="FROST", site="NTH")
        ).status_code
        == 404
    )  # not her site

    # membership change and deactivation: her session ends, both are audited with the reason
    h = login(client, "admin")
    r = client.put(
        f"/api/admin/users/{users['nurse_south']}/sites",
        headers=h,
        json={"sites": ["NTH", "STH"], "reason": "covers both clinics"},
    )
    assert r.status_code == 200
    assert r.json()["sites"] == ["NTH", "STH"]
    r = client.put(
        f"/api/admin/users/{users['cra']}/role",
        headers=h,
        json={"role": "investigator", "reason": "promoted"},
    )
    assert r.json()["role"] == "investigator"
    r = client.put(
        f"/api/admin/users/{users['nurse_south']}/active",
        headers=h,
        json={"active": False, "reason": "left the trust"},
    )
    assert r.status_code == 200
    assert r.json()["active"] is False
    assert (
        client.post("/api/login", json={"username": "nurse_south", "password": NEW_PW}).status_code
        == 401
    )
    with client.registry.factory() as session:
        reasons = {e.reason for e in session.scalars(select(AuditEntry))}
        memberships = [
            e
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.table_name == "site_membership")
            )
        ]
    assert {"covers both clinics", "promoted", "left the trust"} <= reasons
    assert any(e.action == "create" and e.reason == "covers both clinics" for e in memberships)

    # only administrators administer
    monitor = login(client, "monitor")
    assert (
        client.post(
            "/api/admin/sites", json={"code": "X", "name": "X"}, headers=monitor
        ).status_code
        == 403
    )


def test_deactivation_ends_a_live_session(client) -> None:
    login(client, "nurse")
    assert client.get("/api/participants").status_code == 200
    nurse_cookie = client.cookies["cryoneuro_session"]
    h = login(client, "admin")
    r = client.put(
        f"/api/admin/users/{client.registry.users['nurse']}/active",
        headers=h,
        json={"active": False, "reason": "account compromised"},
    )
    assert r.status_code == 200
    client.cookies.set("cryoneuro_session", nurse_cookie)
    assert client.get("/api/participants").status_code == 401


def test_administration_from_the_cli(registry) -> None:
    runner = CliRunner()
    base = ["--db", registry.url, "--key-file", str(registry.settings.key_path())]
    steps = [
        ["site", "add", "NTH", "North Hospital"],
        [
            "study",
            "add",
            "FROST",
            "--title",
            "Frost",
            "--design",
            "rct",
            "--arm",
            "cryo:Cryoablation:1",
            "--arm",
            "excision:Excision:1",
            "--blind",
            "statistician",
        ],
        ["study", "add-site", "FROST", "NTH"],
        ["user", "set-sites", "nurse", "--site", "NTH", "--site", "RBH", "--reason", "new clinic"],
        ["user", "set-role", "monitor", "investigator", "--reason", "promoted"],
        ["user", "deactivate", "leedsnurse", "--reason", "left"],
    ]
    for step in steps:
        result = runner.invoke(app, [*step, *base])
        assert result.exit_code == 0, (step, result.output)
    weak = runner.invoke(
        app, ["user", "add", "eve", "--role", "administrator", "--password", "password", *base]
    )
    assert weak.exit_code == 2
    assert "password" in weak.output
    bad_arm = runner.invoke(
        app, ["study", "add", "X", "--title", "x", "--design", "rct", "--arm", "a:b", *base]
    )
    assert bad_arm.exit_code == 2
    assert "code:label:ratio" in bad_arm.output
    with registry.factory() as session:
        users = {u.username: u for u in session.scalars(select(User))}
        assert sorted(s.code for s in users["nurse"].sites) == ["NTH", "RBH"]
        assert users["monitor"].role == "investigator"
        assert users["leedsnurse"].active is False
        from cryoneuro.registry.models import Study

        frost = session.scalar(select(Study).where(Study.code == "FROST"))
        assert frost.blinded_roles == ["statistician"]
        assert [s.code for s in frost.sites] == ["NTH"]
