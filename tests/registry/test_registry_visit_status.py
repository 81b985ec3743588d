"""Visits not done, item-level missing codes and protocol deviations (issue 14, item 4): recorded
by site staff, refused to monitors and other sites, exported in the tidy format, and reported
with their reasons in the CONSORT flow of ``cryoneuro analyse`` run on that export.

Independent expectations: scores are compared with ``cryoneuro.instruments.score`` on the items
actually given (and the EQ-5D-5L scorer's own refusal without an item is the reason it has no
score); the end-to-end counts are those of the participants built here by hand.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from registry_helpers import enrolment, followup, login, nhs_numbers, procedure

from cryoneuro.errors import InputError
from cryoneuro.instruments import score

TODAY = dt.date.today()


def _day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def _enrol(client, headers, nhs: str = "9434765919", study: str = "MORTON") -> int:
    body = enrolment(nhs=nhs, study=study)
    if study == "STUMP":
        body["neuroma"] = {
            "neuroma_type": "stump",
            "anatomical_site": "below-knee stump, common peroneal",
            "laterality": "left",
            "size_mm": 9.0,
            "prior_treatments": [],
        }
    response = client.post("/api/participants", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _zip_tables(client) -> dict[str, list[dict]]:
    login(client, "stats")
    with zipfile.ZipFile(io.BytesIO(client.get("/api/exports/tidy.zip").content)) as archive:
        return {
            n.removesuffix(".csv"): list(csv.DictReader(io.StringIO(archive.read(n).decode())))
            for n in archive.namelist()
        }


def test_visit_not_done_rules(client) -> None:
    nurse = login(client, "nurse")
    pid = _enrol(client, nurse)
    body = {"visit_code": "m3", "reason": "lost_to_follow_up", "recorded_date": _day(-1)}
    other = client.post(
        f"/api/participants/{pid}/visits-not-done",
        json={**body, "reason": "other"},
        headers=nurse,
    )
    assert other.status_code == 422
    assert other.json()["field"] == "reason_text"
    unknown = client.post(
        f"/api/participants/{pid}/visits-not-done",
        json={**body, "visit_code": "m99"},
        headers=nurse,
    )
    assert (unknown.status_code, unknown.json()["field"]) == (422, "visit_code")
    bad_reason = client.post(
        f"/api/participants/{pid}/visits-not-done", json={**body, "reason": "bored"}, headers=nurse
    )
    assert (bad_reason.status_code, bad_reason.json()["field"]) == (422, "reason")
    made = client.post(f"/api/participants/{pid}/visits-not-done", json=body, headers=nurse)
    assert made.status_code == 201, made.text
    again = client.post(f"/api/participants/{pid}/visits-not-done", json=body, headers=nurse)
    assert again.status_code == 409
    # a visit recorded as not done cannot also be entered...
    entered = client.post(f"/api/participants/{pid}/visits", json=followup(), headers=nurse)
    assert entered.status_code == 409
    assert "not done" in entered.json()["detail"]
    # ...until the record is retracted, with a reason (audited as a deletion)
    assert (
        client.post(
            f"/api/visits-not-done/{made.json()['id']}/retract",
            json={"reason": "participant attended after all"},
            headers=nurse,
        ).status_code
        == 200
    )
    assert (
        client.post(f"/api/participants/{pid}/visits", json=followup(), headers=nurse).status_code
        == 201
    )
    # and a visit that was entered cannot be marked not done
    done = client.post(f"/api/participants/{pid}/visits-not-done", json=body, headers=nurse)
    assert done.status_code == 409
    login(client, "monitor")
    trail = client.get("/api/audit", params={"table": "visit_not_done"}).json()
    assert sorted(e["action"] for e in trail) == ["create", "delete"]
    deleted = next(e for e in trail if e["action"] == "delete")
    assert deleted["old_values"]["reason"] == "lost_to_follow_up"
    assert deleted["reason"] == "participant attended after all"


def test_monitor_and_other_site_cannot_record_absence(client) -> None:
    nurse = login(client, "nurse")
    pid = _enrol(client, nurse)
    not_done = {"visit_code": "m3", "reason": "died", "recorded_date": _day(-1)}
    deviation = {
        "deviation_date": _day(-1),
        "category": "visit_window",
        "visit_code": "m3",
        "description": "seen 40 days after the window",
    }
    monitor = login(client, "monitor")
    assert (
        client.post(
            f"/api/participants/{pid}/visits-not-done", json=not_done, headers=monitor
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/participants/{pid}/deviations", json=deviation, headers=monitor
        ).status_code
        == 403
    )
    assert client.get(f"/api/participants/{pid}/visit-status").status_code == 200
    leeds = login(client, "leedsnurse")
    assert (
        client.post(
            f"/api/participants/{pid}/visits-not-done", json=not_done, headers=leeds
        ).status_code
        == 404
    )
    assert client.get(f"/api/participants/{pid}/visit-status").status_code == 404
    assert client.get(f"/participants/{pid}/status").status_code == 404


def test_missing_codes_are_never_scored_as_values(client, tmp_path) -> None:
    nurse = login(client, "nurse")
    pid = _enrol(client, nurse, study="STUMP")
    client.post(f"/api/participants/{pid}/procedures", json=procedure(), headers=nurse)
    eq5d = {
        "self_care": 1,
        "usual_activities": 2,
        "pain_discomfort": 2,
        "anxiety_depression": 1,
        "vas": 75,
    }
    moxfq = {f"q{i}": i % 5 for i in range(1, 16)}  # q16 coded not applicable
    body = followup(
        answers={"nrs": {"pain": 4}, "eq5d5l": eq5d, "moxfq": moxfq},
        missing={"eq5d5l": {"mobility": "asked-declined"}, "moxfq": {"q16": "not-applicable"}},
    )
    # a code and a value for the same item is refused, naming the item
    both = followup(answers={"nrs": {"pain": 4}}, missing={"nrs": {"pain": "asked-declined"}})
    clash = client.post(f"/api/participants/{pid}/visits", json=both, headers=nurse)
    assert (clash.status_code, clash.json()["field"]) == (422, "missing.nrs.pain")
    wrong_code = followup(missing={"nrs": {"pain": "refused"}}, answers={"eq5d5l": {}})
    bad = client.post(f"/api/participants/{pid}/visits", json=wrong_code, headers=nurse)
    assert (bad.status_code, bad.json()["field"]) == (422, "missing.nrs.pain")
    # without a code, a missing required item is still refused (no silent gap)
    silent = followup(answers={"eq5d5l": eq5d})
    gap = client.post(f"/api/participants/{pid}/visits", json=silent, headers=nurse)
    assert (gap.status_code, gap.json()["field"]) == (422, "answers.eq5d5l.mobility")

    made = client.post(f"/api/participants/{pid}/visits", json=body, headers=nurse)
    assert made.status_code == 201, made.text
    stored = made.json()
    assert "mobility" not in stored["answers"]["eq5d5l"]
    assert "q16" not in stored["answers"]["moxfq"]
    # EQ-5D-5L needs all five dimensions: its scorer refuses, so the registry stores no score
    with pytest.raises(InputError, match="mobility"):
        score("eq5d5l", eq5d)
    assert "eq5d5l" not in stored["scores"]
    # MOXFQ's own missing-item rule scores the 15 items given; the code is not a value (q16 = 0
    # would be a different score)
    assert stored["scores"]["moxfq"] == score("moxfq", moxfq)
    assert stored["scores"]["moxfq"] != score("moxfq", {**moxfq, "q16": 0})
    assert stored["scores"]["nrs"] == score("nrs", {"pain": 4})

    tables = _zip_tables(client)
    assert sorted(
        (r["instrument"], r["item"], r["missing_code"]) for r in tables["missing_items"]
    ) == [("eq5d5l", "mobility", "asked-declined"), ("moxfq", "q16", "not-applicable")]
    eq5d_rows = [r for r in tables["scores"] if r["instrument"] == "eq5d5l"]
    assert {r["kind"] for r in eq5d_rows} == {"item"}
    assert "mobility" not in {r["measure"] for r in eq5d_rows}
    # the analysis reads the export, does not re-score EQ-5D-5L, and lists why
    from cryoneuro.analysis.outcomes import scored
    from cryoneuro.analysis.tidy import load_tidy
    from cryoneuro.analysis.validate import check

    path = tmp_path / "tidy.zip"
    login(client, "stats")
    path.write_bytes(client.get("/api/exports/tidy.zip").content)
    checked = check(load_tidy(path))
    assert not (scored(checked.data)["instrument"] == "eq5d5l").any()
    unscored = [e for e in checked.exclusions if e.table == "missing_items"]
    assert [(e.rule.split(":")[0], e.detail) for e in unscored] == [
        ("not scored", "eq5d5l at m3: mobility=asked-declined")
    ]

    # a correction that supplies the declined item replaces its code and scores the instrument
    visit_id = stored["id"]
    corrected = client.patch(
        f"/api/visits/{visit_id}",
        json={
            "changes": {"answers": {**stored["answers"], "eq5d5l": {**eq5d, "mobility": 2}}},
            "reason": "participant answered mobility at the next call",
        },
        headers=login(client, "nurse"),
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["scores"]["eq5d5l"] == score("eq5d5l", {**eq5d, "mobility": 2})
    status = client.get(f"/api/participants/{pid}/visit-status").json()
    assert [(m["instrument"], m["item"]) for m in status["missing_items"]] == [("moxfq", "q16")]


def test_deviation_recorded_exported_and_free_text_dropped_when_deidentified(client) -> None:
    nurse = login(client, "nurse")
    pid = _enrol(client, nurse)
    client.post(f"/api/participants/{pid}/procedures", json=procedure(), headers=nurse)
    made = client.post(
        f"/api/participants/{pid}/deviations",
        json={
            "deviation_date": _day(-3),
            "category": "visit_window",
            "visit_code": "m3",
            "description": "seen outside the window (Mrs Example on holiday)",
        },
        headers=nurse,
    )
    assert made.status_code == 201, made.text
    bad = client.post(
        f"/api/participants/{pid}/deviations",
        json={"deviation_date": _day(-3), "category": "late", "description": "x" * 5},
        headers=nurse,
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "category")
    rows = _zip_tables(client)["deviations"]
    assert len(rows) == 1
    assert (rows[0]["category"], rows[0]["visit_code"], rows[0]["days_since_procedure"]) == (
        "visit_window",
        "m3",
        "87",  # procedure 90 days ago, deviation 3 days ago
    )
    with zipfile.ZipFile(io.BytesIO(client.get("/api/exports/deidentified.zip").content)) as z:
        text = z.read("deviations.csv").decode()
    assert "visit_window" in text
    assert "Mrs Example" not in text


def test_visit_not_done_appears_with_its_reason_in_the_consort_flow_of_analyse(
    client, tmp_path
) -> None:
    """Registry → tidy export → ``cryoneuro analyse`` (the CLI, in a subprocess): a visit marked
    not done is reported with its reason in the participant flow, and a visit merely absent is
    reported as 'no reason recorded', not folded in silently."""
    nurse = login(client, "nurse")
    ids = [_enrol(client, nurse, nhs, "STUMP") for nhs in nhs_numbers(6)]
    for pid in ids:
        assert (
            client.post(
                f"/api/participants/{pid}/procedures", json=procedure(), headers=nurse
            ).status_code
            == 201
        )
    baseline = [7, 6, 8, 7, 6, 5]
    m3 = {0: 3, 1: 2, 2: 4}
    for i, pid in enumerate(ids):
        response = client.post(
            f"/api/participants/{pid}/visits",
            json=followup(
                visit_code="baseline", visit_date=_day(-95), answers={"nrs": {"pain": baseline[i]}}
            ),
            headers=nurse,
        )
        assert response.status_code == 201, response.text
        if i in m3:
            client.post(
                f"/api/participants/{pid}/visits",
                json=followup(visit_date=_day(-2), answers={"nrs": {"pain": m3[i]}}),
                headers=nurse,
            )
    # participant 4 died before month 3; participant 5 came but declined the pain question;
    # participant 6's month-3 visit is simply not there
    died = client.post(
        f"/api/participants/{ids[3]}/visits-not-done",
        json={"visit_code": "m3", "reason": "died", "recorded_date": _day(-20)},
        headers=nurse,
    )
    assert died.status_code == 201, died.text
    declined = client.post(
        f"/api/participants/{ids[4]}/visits",
        json=followup(
            visit_date=_day(-2),
            answers={"moxfq": {f"q{i}": 1 for i in range(1, 17)}},
            missing={"nrs": "asked-declined"},
        ),
        headers=nurse,
    )
    assert declined.status_code == 201, declined.text
    client.post(
        f"/api/participants/{ids[0]}/deviations",
        json={
            "deviation_date": _day(-2),
            "category": "visit_window",
            "visit_code": "m3",
            "description": "month-3 visit on day 88",
        },
        headers=nurse,
    )
    login(client, "stats")
    export = tmp_path / "tidy.zip"
    export.write_bytes(client.get("/api/exports/tidy.zip").content)

    out = tmp_path / "analysis"
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "cryoneuro.cli", "analyse", str(export), "--out", str(out)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert "m3 not done (all): died 1" in lines
    assert "m3 outcome item coded missing (all): asked-declined 1" in lines
    assert "no m3 value, no reason recorded (all) 1" in lines
    flow = json.loads((out / "results.json").read_text(encoding="utf-8"))["flow"]
    arm = flow["arms"]["all"]
    assert flow["primary_visit"] == "m3"
    assert (arm["allocated"], arm["with_primary_visit"]) == (6, 3)
    assert arm["primary_not_done_reasons"] == {"died": 1}
    assert arm["primary_item_missing_codes"] == {"asked-declined": 1}
    assert arm["primary_no_reason"] == 1
    # every participant without a primary value is accounted for exactly once
    assert (
        arm["with_primary_visit"]
        + arm["primary_not_done"]
        + arm["primary_item_missing"]
        + sum(arm["primary_by_status"].values())
        + arm["primary_no_reason"]
        == arm["allocated"]
    )
    # the report's tables list them too
    with (out / "tables" / "visits_not_done.csv").open(encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == [
            {"visit": "m3", "reason": "died", "arm": "all", "participants": "1"}
        ]
    with (out / "tables" / "deviations.csv").open(encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == [
            {"category": "visit_window", "arm": "all", "deviations": "1", "participants": "1"}
        ]


def test_a_visit_not_done_leaves_the_dashboard_due_list(client) -> None:
    nurse = login(client, "nurse")
    pid = _enrol(client, nurse)
    client.post(f"/api/participants/{pid}/procedures", json=procedure(), headers=nurse)
    # procedure 90 days ago: the 3-month window is open (test_registry_schema_dashboard.py)
    assert {v["visit_code"] for v in client.get("/api/dashboard").json()["visits_due"]} == {"m3"}
    client.post(
        f"/api/participants/{pid}/visits-not-done",
        json={"visit_code": "m3", "reason": "unable", "recorded_date": _day(-1)},
        headers=nurse,
    )
    board = client.get("/api/dashboard").json()
    assert board["visits_due"] == []
    assert "m3" not in {v["visit_code"] for v in board["visits_overdue"]}


def test_followup_page_codes_blank_items_and_status_page_forms(client) -> None:
    import re

    nurse = login(client, "nurse")
    pid = _enrol(client, nurse, study="STUMP")
    url = f"/participants/{pid}/followup"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text).group(1)
    eq5d = {"self_care": 1, "usual_activities": 2, "pain_discomfort": 2, "anxiety_depression": 1}
    form = {
        "csrf_token": token,
        "visit_code": "m1",
        "visit_date": _day(-1),
        "answers.nrs.pain": "4",
        **{f"answers.eq5d5l.{k}": str(v) for k, v in eq5d.items()},
        "answers.eq5d5l.vas": "70",
    }
    # mobility left blank without a reason: refused beside the field
    refused = client.post(url, data=form)
    assert refused.status_code == 422
    assert 'id="error-answers.eq5d5l.mobility"' in refused.text
    saved = client.post(
        url, data={**form, "missing_blank.eq5d5l": "asked-declined"}, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text[-500:]
    status = client.get(f"/api/participants/{pid}/visit-status").json()
    assert [(m["instrument"], m["item"], m["code"]) for m in status["missing_items"]] == [
        ("eq5d5l", "mobility", "asked-declined")
    ]
    visit = client.get(f"/api/participants/{pid}").json()["visits"][0]
    assert "eq5d5l" not in visit["scores"]
    assert visit["scores"]["nrs"] == score("nrs", {"pain": 4})
    # the visit-not-done and deviation forms of the status page
    page_url = f"/participants/{pid}/not-done"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page_url).text).group(1)
    r = client.post(
        page_url,
        data={
            "csrf_token": token,
            "visit_code": "m3",
            "reason": "other",
            "recorded_date": _day(-1),
        },
    )
    assert r.status_code == 422
    assert 'id="error-reason_text"' in r.text
    r = client.post(
        page_url,
        data={
            "csrf_token": token,
            "visit_code": "m3",
            "reason": "withdrew",
            "recorded_date": _day(-1),
        },
        follow_redirects=True,
    )
    assert r.status_code == 200
    assert re.search(r'class="reason">withdrew<', r.text)
    r = client.post(
        f"/participants/{pid}/deviation",
        data={
            "csrf_token": token,
            "deviation_date": _day(-1),
            "category": "consent",
            "description": "consent form version 2.0 used after 2.1 was approved",
        },
        follow_redirects=True,
    )
    assert r.status_code == 200
    assert "consent form version 2.0" in r.text
