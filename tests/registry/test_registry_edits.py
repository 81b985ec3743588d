"""Edits with a reason for change (neuroma, procedure, follow-up answers, adverse event) and
withdrawal, at service, API and page level."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from registry_helpers import adverse_event, enrolment, followup, login, procedure
from sqlalchemy import select

from cryoneuro.registry.errors import (
    NotFoundError,
    PermissionDeniedError,
    RegistryInputError,
)
from cryoneuro.registry.models import AuditEntry, FollowUpVisit, Participant
from cryoneuro.registry.schemas import EnrolmentIn, FollowUpIn
from cryoneuro.registry.services import clinical, participants


def _records(client, headers) -> dict[str, int]:
    pid = client.post("/api/participants", json=enrolment(), headers=headers).json()["id"]
    proc = client.post(
        f"/api/participants/{pid}/procedures", json=procedure(), headers=headers
    ).json()["id"]
    visit = client.post(f"/api/participants/{pid}/visits", json=followup(), headers=headers).json()[
        "id"
    ]
    ae = client.post(
        f"/api/participants/{pid}/adverse-events", json=adverse_event(), headers=headers
    ).json()["id"]
    neuroma = client.get(f"/api/participants/{pid}", headers=headers).json()["neuromas"][0]["id"]
    return {"participant": pid, "procedure": proc, "visit": visit, "ae": ae, "neuroma": neuroma}


def _last_audit(registry, table: str, row_id: int) -> AuditEntry:
    with registry.factory() as session:
        return session.scalars(
            select(AuditEntry)
            .where(AuditEntry.table_name == table, AuditEntry.row_id == str(row_id))
            .order_by(AuditEntry.id.desc())
        ).first()


def test_followup_edit_revalidates_and_rescores(registry) -> None:
    nurse = registry.actor("nurse")
    with registry.factory() as session:
        p = participants.enrol(
            session, registry.settings, nurse, EnrolmentIn.model_validate(enrolment())
        )
        visit = clinical.record_followup(
            session, nurse, p.id, FollowUpIn.model_validate(followup())
        )
        session.commit()
        visit_id = visit.id
        assert visit.scores["nrs"]["pain"] == 3.0
    with registry.factory() as session:
        with pytest.raises(RegistryInputError) as info:
            clinical.edit_followup(
                session, nurse, visit_id, {"answers": {"nrs": {"pain": 12}}}, "transcription error"
            )
        assert info.value.field == "answers.nrs.pain"
        with pytest.raises(RegistryInputError, match="reason"):
            clinical.edit_followup(session, nurse, visit_id, {"answers": {"nrs": {"pain": 5}}}, "")
        with pytest.raises(RegistryInputError, match="future"):
            clinical.edit_followup(
                session,
                nurse,
                visit_id,
                {"visit_date": (dt.date.today() + dt.timedelta(days=9)).isoformat()},
                "wrong date",
            )
        session.rollback()
        clinical.edit_record(
            session,
            nurse,
            "followup_visit",
            visit_id,
            {"answers": {"nrs": {"pain": "5"}}},
            "transcription error",
        )
        session.commit()
    with registry.factory() as session:
        visit = session.get(FollowUpVisit, visit_id)
        assert visit.answers == {"nrs": {"pain": 5}}
        assert visit.scores == {"nrs": {"pain": 5.0}}
    entry = _last_audit(registry, "followup_visit", visit_id)
    assert entry.reason == "transcription error"
    assert entry.username == "nurse"
    assert entry.old_values["answers"]["nrs"]["pain"] == 3
    assert entry.new_values["answers"] == {"nrs": {"pain": 5}}
    assert entry.old_values["scores"]["nrs"]["pain"] == 3.0
    with registry.factory() as session:  # other site, monitor
        with pytest.raises(NotFoundError):
            clinical.edit_followup(
                session,
                registry.actor("leedsnurse"),
                visit_id,
                {"answers": {"nrs": {"pain": 1}}},
                "not mine",
            )
        with pytest.raises(PermissionDeniedError):
            clinical.edit_followup(
                session,
                registry.actor("monitor"),
                visit_id,
                {"answers": {"nrs": {"pain": 1}}},
                "read only",
            )


def test_withdrawal_service(registry) -> None:
    nurse = registry.actor("nurse")
    with registry.factory() as session:
        p = participants.enrol(
            session, registry.settings, nurse, EnrolmentIn.model_validate(enrolment())
        )
        session.commit()
        with pytest.raises(RegistryInputError, match="future"):
            participants.withdraw(
                session, nurse, p.id, dt.date.today() + dt.timedelta(days=5), "moving abroad"
            )
        participants.withdraw(session, nurse, p.id, dt.date.today(), "moving abroad")
        session.commit()
        with pytest.raises(RegistryInputError, match="withdrawn"):
            clinical.record_followup(session, nurse, p.id, FollowUpIn.model_validate(followup()))
        assert session.get(Participant, p.id).status == "withdrawn"
        assert p.consents[0].withdrawal_date == dt.date.today()


def test_patch_endpoints(client) -> None:
    headers = login(client, "nurse")
    ids = _records(client, headers)
    reg = client.registry
    cases = [
        (f"/api/neuromas/{ids['neuroma']}", "neuroma", ids["neuroma"], {"size_mm": 8.5}),
        (
            f"/api/procedures/{ids['procedure']}",
            "procedure",
            ids["procedure"],
            {"device_lot": "LOT-43B", "gas": "nitrous-oxide"},
        ),
        (
            f"/api/visits/{ids['visit']}",
            "followup_visit",
            ids["visit"],
            {"answers": {"nrs": {"pain": 1}}},
        ),
        (
            f"/api/adverse-events/{ids['ae']}",
            "adverse_event",
            ids["ae"],
            {"outcome": "recovering", "serious": True},
        ),
    ]
    for url, table, row_id, changes in cases:
        no_reason = client.patch(url, json={"changes": changes}, headers=headers)
        assert no_reason.status_code == 422
        assert no_reason.json()["field"] == "reason"
        ok = client.patch(
            url, json={"changes": changes, "reason": "source data check"}, headers=headers
        )
        assert ok.status_code == 200, ok.text
        entry = _last_audit(reg, table, row_id)
        assert entry.reason == "source data check"
        for key, value in changes.items():
            assert entry.new_values[key] == value
            assert key in entry.old_values
    assert (
        client.patch(
            f"/api/visits/{ids['visit']}",
            headers=headers,
            json={"changes": {"answers": {"nrs": {"pain": 1}}}, "reason": "x"},
        ).status_code
        == 422
    )
    assert client.get(f"/api/participants/{ids['participant']}", headers=headers).json()["visits"][
        0
    ]["scores"] == {"nrs": {"pain": 1.0}}
    bad = client.patch(
        f"/api/procedures/{ids['procedure']}",
        headers=headers,
        json={"changes": {"gas": "helium"}, "reason": "typo"},
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "changes.gas"
    bad = client.patch(
        f"/api/adverse-events/{ids['ae']}",
        headers=headers,
        json={"changes": {"participant_id": 1}, "reason": "typo"},
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "changes.participant_id"
    assert (
        client.patch(
            "/api/visits/99999999999",
            headers=headers,
            json={"changes": {"visit_date": "2026-01-01"}, "reason": "x y"},
        ).status_code
        == 404
    )
    assert (
        client.patch(
            f"/api/visits/{ids['visit']}",
            json={"changes": {"answers": {}}, "reason": "csrf missing"},
        ).status_code
        == 403
    )
    # withdrawal through PATCH; no further visits
    withdraw = {
        "status": "withdrawn",
        "withdrawal_date": dt.date.today().isoformat(),
        "reason": "participant request",
    }
    assert (
        client.patch(
            f"/api/participants/{ids['participant']}",
            json={**withdraw, "status": "enrolled"},
            headers=headers,
        ).status_code
        == 422
    )
    ok = client.patch(f"/api/participants/{ids['participant']}", json=withdraw, headers=headers)
    assert ok.status_code == 200
    assert ok.json()["status"] == "withdrawn"
    more = client.post(
        f"/api/participants/{ids['participant']}/visits",
        json=followup(visit_code="m6"),
        headers=headers,
    )
    assert more.status_code == 422
    assert "withdrawn" in more.json()["detail"]
    # monitors are read-only; another site's nurse cannot see the records
    client.post("/api/logout", headers=headers)
    monitor = login(client, "monitor")
    assert (
        client.patch(
            f"/api/neuromas/{ids['neuroma']}",
            headers=monitor,
            json={"changes": {"size_mm": 9}, "reason": "monitor edit"},
        ).status_code
        == 403
    )
    client.post("/api/logout", headers=monitor)
    leeds = login(client, "leedsnurse")
    assert (
        client.patch(
            f"/api/neuromas/{ids['neuroma']}",
            headers=leeds,
            json={"changes": {"size_mm": 9}, "reason": "other site"},
        ).status_code
        == 404
    )


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_edit_and_withdraw_pages(client) -> None:
    headers = login(client, "nurse")
    ids = _records(client, headers)
    page = client.get(f"/records/adverse_event/{ids['ae']}/edit")
    assert page.status_code == 200
    assert "Cellulitis at the puncture site" in page.text
    assert 'value="recovered" selected' in page.text
    form = {
        "csrf_token": _token(page.text),
        "onset_date": adverse_event()["onset_date"],
        "category": "infection",
        "description": "Cellulitis, treated with oral antibiotics",
        "severity": "moderate",
        "serious": "false",
        "relatedness": "probable",
        "outcome": "recovered",
    }
    missing = client.post(f"/records/adverse_event/{ids['ae']}/edit", data=form)
    assert missing.status_code == 422
    assert re.search(r'id="error-reason"[^>]*>[^<]*reason', missing.text)
    bad = client.post(
        f"/records/adverse_event/{ids['ae']}/edit",
        data={**form, "severity": "apocalyptic", "reason": "correct severity"},
    )
    assert bad.status_code == 422
    assert 'id="error-severity"' in bad.text
    ok = client.post(
        f"/records/adverse_event/{ids['ae']}/edit",
        data={**form, "reason": "correct severity"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    entry = _last_audit(client.registry, "adverse_event", ids["ae"])
    assert entry.reason == "correct severity"
    assert entry.old_values == {
        "severity": "mild",
        "description": "Cellulitis at the puncture site",
    }
    assert entry.new_values["severity"] == "moderate"
    # follow-up correction: an out-of-range answer beside its field, then re-scored
    page = client.get(f"/records/followup_visit/{ids['visit']}/edit")
    assert 'name="answers.nrs.pain" id="answers.nrs.pain" value="3"' in page.text
    visit_form = {
        "csrf_token": _token(page.text),
        "visit_date": followup()["visit_date"],
        "answers.nrs.pain": "14",
        "reason": "patient corrected",
    }
    bad = client.post(f"/records/followup_visit/{ids['visit']}/edit", data=visit_form)
    assert bad.status_code == 422
    assert re.search(r'id="error-answers.nrs.pain"[^>]*>[^<]*0–10', bad.text)
    ok = client.post(
        f"/records/followup_visit/{ids['visit']}/edit",
        data={**visit_form, "answers.nrs.pain": "4"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    visit = client.get(f"/api/participants/{ids['participant']}", headers=headers).json()["visits"][
        0
    ]
    assert visit["answers"] == {"nrs": {"pain": 4}}
    assert visit["scores"]["nrs"]["pain"] == 4.0
    # neuroma: clearing an optional field is a change too
    page = client.get(f"/records/neuroma/{ids['neuroma']}/edit")
    ok = client.post(
        f"/records/neuroma/{ids['neuroma']}/edit",
        follow_redirects=False,
        data={
            "csrf_token": _token(page.text),
            "neuroma_type": "mortons",
            "anatomical_site": "second web space",
            "laterality": "left",
            "size_mm": "",
            "reason": "MRI report re-read",
        },
    )
    assert ok.status_code == 303
    entry = _last_audit(client.registry, "neuroma", ids["neuroma"])
    assert entry.new_values == {"anatomical_site": "second web space", "size_mm": None}
    # procedure edit page returns to the procedure page
    page = client.get(f"/records/procedure/{ids['procedure']}/edit")
    assert 'value="LOT-42A"' in page.text
    assert client.get("/records/participant/1/edit").status_code == 404
    # withdraw page: reason required, then no more visits
    page = client.get(f"/participants/{ids['participant']}/withdraw")
    bad = client.post(
        f"/participants/{ids['participant']}/withdraw",
        data={"csrf_token": _token(page.text), "withdrawal_date": dt.date.today().isoformat()},
    )
    assert bad.status_code == 422
    assert 'id="error-reason"' in bad.text
    ok = client.post(
        f"/participants/{ids['participant']}/withdraw",
        follow_redirects=False,
        data={
            "csrf_token": _token(page.text),
            "reason": "lost to follow-up",
            "withdrawal_date": dt.date.today().isoformat(),
        },
    )
    assert ok.status_code == 303
    page = client.get(f"/participants/{ids['participant']}")
    assert 'id="withdrawn-notice"' in page.text
    assert 'id="record-followup"' not in page.text
    assert client.get(f"/participants/{ids['participant']}/followup").status_code == 200
    assert (
        client.post(
            f"/participants/{ids['participant']}/followup",
            data={
                "csrf_token": _token(page.text),
                "visit_code": "m6",
                "visit_date": dt.date.today().isoformat(),
                "answers.nrs.pain": "2",
            },
        ).status_code
        == 422
    )
    # monitors cannot open edit pages
    client.post("/api/logout", headers=headers)
    login(client, "monitor")
    assert client.get(f"/records/neuroma/{ids['neuroma']}/edit").status_code == 403
    assert client.get(f"/participants/{ids['participant']}/withdraw").status_code == 403
    assert "edit-neuroma" not in client.get(f"/participants/{ids['participant']}").text
