"""Issue 13, randomisation: every role saw arms and pain by arm. Now a study names the roles
kept blind; they see "blinded", pain pooled over arms, no arm in exports, and cannot
randomise; an emergency unblinding gives one arm to a clinician and is audited."""

from __future__ import annotations

import csv
import io

from registry_helpers import enrolment, followup, login, nhs_numbers, procedure
from sqlalchemy import select

from cryoneuro.registry.models import AuditEntry


def _blinded_study(client) -> None:
    h = login(client, "admin")
    r = client.post(
        "/api/admin/studies",
        headers=h,
        json={
            "code": "BLIND",
            "title": "Blinded RCT",
            "design": "rct",
            "test_study": True,
            "blinded_roles": ["statistician", "monitor"],
            "arms": [
                {"code": "cryo", "label": "Cryoablation"},
                {"code": "steroid", "label": "Steroid injection"},
            ],
        },
    )
    assert r.status_code == 201
    assert r.json()["blinded_roles"] == ["monitor", "statistician"]
    assert (
        client.post(
            "/api/admin/studies/BLIND/sites", headers=h, json={"site_code": "RBH"}
        ).status_code
        == 201
    )


def test_blinded_roles_see_no_arm_anywhere(client) -> None:
    _blinded_study(client)
    h = login(client, "nurse")
    arms, ids = {}, []
    for nhs in nhs_numbers(6, start=700):
        pid = client.post(
            "/api/participants", headers=h, json=enrolment(nhs, study="BLIND")
        ).json()["id"]
        arms[pid] = client.post(f"/api/participants/{pid}/randomise", headers=h).json()["arm_code"]
        client.post(f"/api/participants/{pid}/procedures", headers=h, json=procedure())
        assert (
            client.post(f"/api/participants/{pid}/visits", headers=h, json=followup()).status_code
            == 201
        )
        ids.append(pid)
    assert set(arms.values()) <= {"cryo", "steroid"}
    assert client.get(f"/api/participants/{ids[0]}").json()["arm_code"] == arms[ids[0]]

    for role in ("stats", "monitor"):
        login(client, role)
        assert client.get(f"/api/participants/{ids[0]}").json()["arm_code"] == "blinded"
        assert "blinded" in client.get(f"/participants/{ids[0]}").text
        outcomes = next(
            o for o in client.get("/api/dashboard/outcomes").json() if o["study"] == "BLIND"
        )
        assert {r["arm"] for r in outcomes["pain"]} == {"blinded"}
        assert sum(r["n"] for r in outcomes["pain"]) == 6  # pooled: every visit counted once
        rows = list(
            csv.DictReader(io.StringIO(client.get("/api/exports/tidy/participants.csv").text))
        )
        assert {r["arm"] for r in rows if r["study"] == "BLIND"} == {"blinded"}
        records = list(
            csv.DictReader(io.StringIO(client.get("/api/exports/redcap/records.csv").text))
        )
        assert {r["arm"] for r in records if r.get("study") == "BLIND"} == {"blinded"}
        # the other (unblinded) study still shows its arms to the same role
    login(client, "admin")
    rows = list(csv.DictReader(io.StringIO(client.get("/api/exports/tidy/participants.csv").text)))
    assert {r["arm"] for r in rows if r["study"] == "BLIND"} == set(arms.values())


def test_blinded_role_cannot_randomise_and_emergency_unblinding_is_audited(client) -> None:
    h = login(client, "admin")
    r = client.post(
        "/api/admin/studies",
        headers=h,
        json={
            "code": "ASSESS",
            "title": "Assessor-blinded RCT",
            "design": "rct",
            "test_study": True,
            "blinded_roles": ["data_entry"],
            "arms": [
                {"code": "cryo", "label": "Cryoablation"},
                {"code": "steroid", "label": "Steroid injection"},
            ],
        },
    )
    assert r.status_code == 201
    client.post("/api/admin/studies/ASSESS/sites", headers=h, json={"site_code": "RBH"})
    nurse = login(client, "nurse")  # data_entry: the blinded assessor here
    pid = client.post("/api/participants", headers=nurse, json=enrolment(study="ASSESS")).json()[
        "id"
    ]
    refused = client.post(f"/api/participants/{pid}/randomise", headers=nurse)
    assert refused.status_code == 403
    assert "blinded" in refused.json()["detail"]
    pi = login(client, "investigator")
    arm = client.post(f"/api/participants/{pid}/randomise", headers=pi).json()["arm_code"]

    nurse = login(client, "nurse")
    assert client.get(f"/api/participants/{pid}").json()["arm_code"] == "blinded"
    short = client.post(f"/api/participants/{pid}/unblind", headers=nurse, json={"reason": "asked"})
    assert short.status_code == 422
    assert short.json()["field"] == "reason"
    reason = "anaphylaxis in A&E: treating team needs to know if steroid was given"
    r = client.post(f"/api/participants/{pid}/unblind", headers=nurse, json={"reason": reason})
    assert r.status_code == 200
    assert r.json()["arm_code"] == arm
    with client.registry.factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "unblind")).one()
    assert entry.username == "nurse"
    assert entry.reason == reason
    assert entry.row_id == str(pid)
    assert arm not in str(entry.new_values)
    monitor = login(client, "monitor")  # monitors may not break the blind
    assert (
        client.post(
            f"/api/participants/{pid}/unblind", headers=monitor, json={"reason": reason}
        ).status_code
        == 403
    )
