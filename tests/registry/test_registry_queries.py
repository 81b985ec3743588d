"""Data queries (issue 14, item 3): a monitor raises, the site corrects or explains, the monitor
closes or re-opens; every step in the audit trail with old and new values; scoped by site;
in the export bundle.

Expectations are independent of the code under test: the corrected NRS score is what
``cryoneuro.instruments.score`` gives for the corrected answer, the ranges are the
instrument's published ones (NRS 0–10), and the audit entries are read straight from the
``audit_entry`` table through the API a monitor uses.
"""

from __future__ import annotations

import csv
import io
import zipfile

from registry_helpers import enrolment, followup, login, procedure
from test_registry_browser import browser_page  # noqa: F401  (the Chromium fixture)

from cryoneuro.instruments import score


def _participant_with_visit(client) -> tuple[int, int]:
    nurse = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(), headers=nurse).json()["id"]
    assert (
        client.post(
            f"/api/participants/{pid}/procedures", json=procedure(), headers=nurse
        ).status_code
        == 201
    )
    response = client.post(f"/api/participants/{pid}/visits", json=followup(), headers=nurse)
    assert response.status_code == 201, response.text
    return pid, response.json()["id"]


def _raise(client, visit_id: int, field: str = "answers.nrs.pain") -> dict:
    monitor = login(client, "monitor")
    response = client.post(
        "/api/queries",
        json={
            "record_type": "followup_visit",
            "record_id": visit_id,
            "field": field,
            "text": "NRS 3 here, but the source diary says 8: please check",
        },
        headers=monitor,
    )
    assert response.status_code == 201, response.text
    return response.json()


def _audit(client, table: str, row_id: int) -> list[dict]:
    login(client, "monitor")
    response = client.get("/api/audit", params={"table": table, "row_id": str(row_id)})
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda e: e["id"])


def test_query_raised_corrected_and_closed_is_audited_step_by_step(client) -> None:
    pid, visit_id = _participant_with_visit(client)
    query = _raise(client, visit_id)
    assert (query["status"], query["value_at_raise"]) == ("open", 3)
    qid = query["id"]

    # a correction outside the instrument's range (NRS 0–10) is refused, naming the field
    nurse = login(client, "nurse")
    bad = client.post(
        f"/api/queries/{qid}/answer",
        json={"kind": "correct", "value": 11, "text": "diary says 11"},
        headers=nurse,
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "answers.nrs.pain"
    assert "0–10" in bad.json()["detail"]
    assert client.get(f"/api/queries/{qid}").json()["status"] == "open"

    good = client.post(
        f"/api/queries/{qid}/answer",
        json={"kind": "correct", "value": 8, "text": "transcription error; diary says 8"},
        headers=nurse,
    )
    assert good.status_code == 200, good.text
    assert good.json()["status"] == "answered"
    visit = client.get(f"/api/participants/{pid}").json()["visits"][0]
    assert visit["answers"]["nrs"]["pain"] == 8
    assert visit["scores"]["nrs"] == score("nrs", {"pain": 8})

    monitor = login(client, "monitor")
    closed = client.post(f"/api/queries/{qid}/close", json={"text": ""}, headers=monitor)
    assert closed.status_code == 200, closed.text
    steps = closed.json()["steps"]
    assert [(s["action"], s["old_value"], s["new_value"], s["username"]) for s in steps] == [
        ("raise", 3, 3, "monitor"),
        ("correct", 3, 8, "nurse"),
        ("close", 8, 8, "monitor"),
    ]

    # the audit trail: the query's creation and each status change with old and new values
    query_entries = _audit(client, "data_query", qid)
    assert [e["action"] for e in query_entries] == ["create", "update", "update"]
    assert query_entries[0]["new_values"]["value_at_raise"] == 3
    assert query_entries[0]["new_values"]["status"] == "open"
    assert query_entries[0]["username"] == "monitor"
    assert (query_entries[1]["old_values"]["status"], query_entries[1]["new_values"]["status"]) == (
        "open",
        "answered",
    )
    assert query_entries[1]["username"] == "nurse"
    assert (query_entries[2]["old_values"]["status"], query_entries[2]["new_values"]["status"]) == (
        "answered",
        "closed",
    )
    # the corrected record itself: old and new answers, with the answer as reason for change
    visit_entries = [
        e for e in _audit(client, "followup_visit", visit_id) if e["action"] == "update"
    ]
    assert len(visit_entries) == 1
    entry = visit_entries[0]
    assert entry["old_values"]["answers"]["nrs"]["pain"] == 3
    assert entry["new_values"]["answers"]["nrs"]["pain"] == 8
    assert entry["username"] == "nurse"
    assert entry["reason"] == f"query {qid}: transcription error; diary says 8"
    # each step of the thread is an audit entry too (create), with its old and new value
    login(client, "monitor")
    step_entries = [e for e in client.get("/api/audit", params={"table": "data_query_step"}).json()]
    assert sorted(
        (e["new_values"]["action"], e["new_values"]["old_value"], e["new_values"]["new_value"])
        for e in step_entries
    ) == sorted([("raise", 3, 3), ("correct", 3, 8), ("close", 8, 8)])


def test_monitor_cannot_edit_data_directly(client) -> None:
    _pid, visit_id = _participant_with_visit(client)
    query = _raise(client, visit_id)
    monitor = login(client, "monitor")
    edit = {"changes": {"answers": {"nrs": {"pain": 8}}}, "reason": "monitor thinks 8"}
    assert client.patch(f"/api/visits/{visit_id}", json=edit, headers=monitor).status_code == 403
    assert (
        client.patch(
            f"/api/records/followup_visit/{visit_id}", json=edit, headers=monitor
        ).status_code
        == 403
    )
    answer = client.post(
        f"/api/queries/{query['id']}/answer",
        json={"kind": "correct", "value": 8, "text": "monitor correcting"},
        headers=monitor,
    )
    assert answer.status_code == 403
    assert client.get(f"/api/queries/{query['id']}").json()["status"] == "open"


def test_site_staff_raise_nothing_and_other_sites_see_nothing(client) -> None:
    _pid, visit_id = _participant_with_visit(client)
    nurse = login(client, "nurse")
    own = client.post(
        "/api/queries",
        json={
            "record_type": "followup_visit",
            "record_id": visit_id,
            "field": "answers.nrs.pain",
            "text": "raising my own query",
        },
        headers=nurse,
    )
    assert own.status_code == 403
    qid = _raise(client, visit_id)["id"]
    leeds = login(client, "leedsnurse")
    assert client.get(f"/api/queries/{qid}").status_code == 404
    assert (
        client.post(
            f"/api/queries/{qid}/answer",
            json={"kind": "explain", "text": "not ours"},
            headers=leeds,
        ).status_code
        == 404
    )
    assert client.get("/api/queries").json() == []
    assert client.get(f"/queries/{qid}").status_code == 404
    assert 'id="no-queries"' in client.get("/queries").text


def test_reopened_query_explained_and_listed_per_site_and_monitor(client) -> None:
    _pid, visit_id = _participant_with_visit(client)
    qid = _raise(client, visit_id)["id"]
    nurse = login(client, "nurse")
    assert (
        client.post(
            f"/api/queries/{qid}/answer",
            json={"kind": "explain", "text": "the diary entry belongs to another week"},
            headers=nurse,
        ).json()["status"]
        == "answered"
    )
    # answering twice is refused: the monitor decides next
    again = client.post(
        f"/api/queries/{qid}/answer", json={"kind": "explain", "text": "again"}, headers=nurse
    )
    assert again.status_code == 409
    monitor = login(client, "monitor")
    reopened = client.post(
        f"/api/queries/{qid}/reopen", json={"text": "which week, then?"}, headers=monitor
    )
    assert reopened.json()["status"] == "open"
    assert (
        client.get("/api/queries", params={"status": "open", "site": "RBH"}).json()[0]["id"] == qid
    )
    assert client.get("/api/queries", params={"site": "LTH"}).json() == []
    assert client.get("/api/queries", params={"raised_by": "monitor"}).json()[0]["id"] == qid
    assert client.get("/api/queries", params={"raised_by": "someone"}).json() == []
    page = client.get("/queries", params={"status": "open", "site": "RBH", "raised_by": "monitor"})
    assert page.status_code == 200
    assert f'id="query-{qid}"' in page.text
    nurse = login(client, "nurse")
    assert [q["id"] for q in client.get("/api/queries", params={"status": "open"}).json()] == [qid]
    client.post(
        f"/api/queries/{qid}/answer",
        json={"kind": "explain", "text": "week 12, confirmed with the participant"},
        headers=nurse,
    )
    # the export bundle carries a queries table: one row per query, latest answer, re-opens
    login(client, "stats")
    with zipfile.ZipFile(io.BytesIO(client.get("/api/exports/tidy.zip").content)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("queries.csv").decode())))
    assert len(rows) == 1
    row = rows[0]
    assert (row["query_id"], row["participant_id"], row["site"]) == (
        str(qid),
        "MORTON-RBH-0001",
        "RBH",
    )
    assert (row["field"], row["value_at_raise"], row["status"]) == (
        "answers.nrs.pain",
        "3",
        "answered",
    )
    assert (row["answer_kind"], row["answer_text"], row["times_reopened"]) == (
        "explain",
        "week 12, confirmed with the participant",
        "1",
    )
    assert client.get("/api/exports/tidy/queries.csv").status_code == 200
    # the de-identified extract leaves queries out (free text and raw values)
    with zipfile.ZipFile(
        io.BytesIO(client.get("/api/exports/deidentified.zip").content)
    ) as archive:
        assert "queries.csv" not in archive.namelist()


def test_query_rules_fields_duplicates_and_participant_corrections(client) -> None:
    pid, visit_id = _participant_with_visit(client)
    monitor = login(client, "monitor")
    unknown = client.post(
        "/api/queries",
        json={
            "record_type": "followup_visit",
            "record_id": visit_id,
            "field": "scores",
            "text": "? why",
        },
        headers=monitor,
    )
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "field"
    missing_record = client.post(
        "/api/queries",
        json={
            "record_type": "procedure",
            "record_id": 999999,
            "field": "device_lot",
            "text": "lot?",
        },
        headers=monitor,
    )
    assert missing_record.status_code == 404
    _raise(client, visit_id)
    monitor = login(client, "monitor")
    duplicate = client.post(
        "/api/queries",
        json={
            "record_type": "followup_visit",
            "record_id": visit_id,
            "field": "answers.nrs.pain",
            "text": "second query on the same field",
        },
        headers=monitor,
    )
    assert duplicate.status_code == 409
    # a participant field: the age contradicts the screening answer '18 or over' if corrected
    # below 18; a plausible correction passes and is audited with old and new values
    age_query = client.post(
        "/api/queries",
        json={
            "record_type": "participant",
            "record_id": pid,
            "field": "age_at_enrolment_years",
            "text": "clinic letter says 45",
        },
        headers=monitor,
    ).json()
    nurse = login(client, "nurse")
    minor = client.post(
        f"/api/queries/{age_query['id']}/answer",
        json={"kind": "correct", "value": 17, "text": "typed wrongly"},
        headers=nurse,
    )
    assert minor.status_code == 422
    assert minor.json()["field"] == "age_at_enrolment_years"
    fixed = client.post(
        f"/api/queries/{age_query['id']}/answer",
        json={"kind": "correct", "value": 45, "text": "typed wrongly; letter says 45"},
        headers=nurse,
    )
    assert fixed.status_code == 200, fixed.text
    assert client.get(f"/api/participants/{pid}").json()["age_at_enrolment_years"] == 45
    entries = [e for e in _audit(client, "participant", pid) if e["action"] == "update"]
    assert (entries[-1]["old_values"], entries[-1]["new_values"]) == (
        {"age_at_enrolment_years": 54},
        {"age_at_enrolment_years": 45},
    )
    # closing an unanswered query needs a note
    monitor = login(client, "monitor")
    open_one = client.post(
        "/api/queries",
        json={
            "record_type": "procedure",
            "record_id": client.get(f"/api/participants/{pid}").json()["procedures"][0]["id"],
            "field": "device_lot",
            "text": "lot not in the delivery note",
        },
        headers=monitor,
    ).json()
    assert open_one["value_at_raise"] == "LOT-42A"
    no_note = client.post(f"/api/queries/{open_one['id']}/close", json={}, headers=monitor)
    assert no_note.status_code == 422
    assert no_note.json()["field"] == "text"


def test_query_pages_answer_and_close(client) -> None:
    pid, visit_id = _participant_with_visit(client)
    login(client, "monitor")
    page = client.get(f"/participants/{pid}/status")
    assert page.status_code == 200
    assert f'value="followup_visit:{visit_id}:answers.nrs.pain"' in page.text
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    raised = client.post(
        f"/participants/{pid}/status",
        data={
            "csrf_token": token,
            "target": f"followup_visit:{visit_id}:answers.nrs.pain",
            "text": "please verify against the diary",
        },
        follow_redirects=False,
    )
    assert raised.status_code == 303
    qid = int(raised.headers["location"].rsplit("/", 1)[1])
    login(client, "nurse")
    page = client.get(f"/queries/{qid}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    refused = client.post(
        f"/queries/{qid}",
        data={"csrf_token": token, "action": "correct", "value": "12", "text": "diary"},
    )
    assert refused.status_code == 422
    assert "answers.nrs.pain" in refused.text
    done = client.post(
        f"/queries/{qid}",
        data={"csrf_token": token, "action": "correct", "value": "6", "text": "diary says 6"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert client.get(f"/api/participants/{pid}").json()["visits"][0]["answers"]["nrs"]["pain"] == 6
    login(client, "monitor")
    page = client.get(f"/queries/{qid}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post(f"/queries/{qid}", data={"csrf_token": token, "action": "close", "text": ""})
    assert client.get(f"/api/queries/{qid}").json()["status"] == "closed"


def test_query_cycle_in_chromium(live_server, browser_page, registry) -> None:  # noqa: F811
    """The same cycle through the pages in headless Chromium: the monitor raises, the nurse's
    out-of-range correction is refused beside the field name, the in-range one is saved, the
    monitor closes, and the audit trail page shows the old and the new answer."""
    from registry_helpers import PASSWORD

    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.schemas import EnrolmentIn, FollowUpIn, ProcedureIn
    from cryoneuro.registry.services import clinical, participants

    nurse = registry.actor("nurse")
    with transaction(registry.factory) as session:
        p = participants.enrol(
            session, registry.settings, nurse, EnrolmentIn.model_validate(enrolment())
        )
        clinical.record_procedure(session, nurse, p.id, ProcedureIn.model_validate(procedure()))
        visit = clinical.record_followup(
            session, nurse, p.id, FollowUpIn.model_validate(followup())
        )
        pid, visit_id = p.id, visit.id
    page, base = browser_page, live_server.url

    def log_in(username: str) -> None:
        page.goto(base + "/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_url(base + "/")

    log_in("monitor")
    page.goto(f"{base}/participants/{pid}/status")
    page.select_option("#target", f"followup_visit:{visit_id}:answers.nrs.pain")
    page.fill("#text", "NRS 3, but the diary says 8: please check")
    page.click("#raise")
    page.wait_for_url("**/queries/*")
    query_url = page.url
    assert page.inner_text("#query-status") == "open"
    page.click("text=Log out")

    log_in("nurse")
    page.goto(base + "/queries")
    page.click(f"#query-{query_url.rsplit('/', 1)[1]}")
    page.wait_for_url(query_url)
    page.fill("#value", "12")
    page.fill("#text", "diary says 12")
    page.click("#correct")
    assert "answers.nrs.pain" in page.inner_text("#query-error")
    assert page.inner_text("#query-status") == "open"
    page.fill("#value", "8")
    page.fill("#text", "transcription error; diary says 8")
    page.click("#correct")
    page.wait_for_url(query_url)
    assert page.inner_text("#query-status") == "answered"
    page.click("text=Log out")

    log_in("monitor")
    page.goto(query_url)
    page.click("#close")
    page.wait_for_url(query_url)
    assert page.inner_text("#query-status") == "closed"
    steps = page.locator("#steps tr.step")
    assert [steps.nth(i).locator(".action").inner_text() for i in range(steps.count())] == [
        "raise",
        "correct",
        "close",
    ]
    assert steps.nth(1).locator(".old").inner_text() == "3"
    assert steps.nth(1).locator(".new").inner_text() == "8"
    page.goto(base + "/audit")
    audit = page.inner_text("table.audit")
    assert '"pain": 3' in audit
    assert '"pain": 8' in audit
    assert "transcription error; diary says 8" in audit
