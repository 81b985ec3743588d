"""Exports: tidy CSV, REDCap dictionary/records, FHIR bundle, de-identified extract."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import zipfile

from registry_helpers import adverse_event, enrolment, followup, login, nhs_numbers, procedure

from cryoneuro.registry.exports.deidentified import DEID_TABLES
from cryoneuro.registry.exports.redcap import DICTIONARY_COLUMNS
from cryoneuro.registry.exports.tidy import TABLES


def _populate(client) -> int:
    h = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(), headers=h).json()["id"]
    client.post(f"/api/participants/{pid}/randomise", headers=h)
    for url, body in [
        ("procedures", procedure()),
        ("visits", followup()),
        ("adverse-events", adverse_event(description='=HYPERLINK("x")')),
    ]:
        assert (
            client.post(f"/api/participants/{pid}/{url}", json=body, headers=h).status_code == 201
        )
    return pid


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_tidy_tables(client) -> None:
    _populate(client)
    login(client, "stats")
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/exports/tidy.zip").content))
    assert sorted(archive.namelist()) == sorted(f"{t}.csv" for t in TABLES)
    for table, columns in TABLES.items():
        text = archive.read(f"{table}.csv").decode()
        assert text.splitlines()[0].split(",") == columns
    participants = _rows(archive.read("participants.csv").decode())
    assert participants[0]["participant_id"] == "MORTON-RBH-0001"
    assert participants[0]["arm"] in ("cryo", "steroid")
    visits = _rows(archive.read("visits.csv").decode())
    assert visits[0]["days_since_procedure"] == "88"
    scores = _rows(archive.read("scores.csv").decode())
    # one row per answered item and one per score, each with the visit's day: the NRS pain
    # answer 3 (an item, and its score 3.0 — the NRS score is the rating, Farrar 2001), the
    # EQ-5D-5L items as answered and the 16 MOXFQ items
    nrs = sorted((r["kind"], r["measure"], r["value"]) for r in scores if r["instrument"] == "nrs")
    assert nrs == [("item", "pain", "3"), ("score", "pain", "3.0")]
    answers = followup()["answers"]
    for instrument in ("eq5d5l", "moxfq"):
        items = {
            r["measure"]: r["value"]
            for r in scores
            if r["instrument"] == instrument and r["kind"] == "item"
        }
        assert items == {k: str(v) for k, v in answers[instrument].items()}
    assert {r["days_since_procedure"] for r in scores} == {"88"}
    events = _rows(archive.read("adverse_events.csv").decode())
    assert events[0]["description"].startswith("'=")  # no spreadsheet formula injection
    single = client.get("/api/exports/tidy/procedures.csv")
    assert single.headers["content-type"].startswith("text/csv")
    assert _rows(single.text)[0]["device_lot"] == "LOT-42A"
    assert "9434765919" not in archive.read("participants.csv").decode()


def _expected_offset(client, participant_id: int) -> tuple[int, str]:
    """(date offset, pseudonym) recomputed from the construction documented in
    exports/deidentified.py: HMAC-SHA256 of "deid:<id>" under the randomisation key; the first
    4 bytes mod 361, minus 180, are the days; bytes 4-10 in hex, after "D", the pseudonym."""
    key = client.registry.settings.randomisation_seed_secret()
    digest = hmac.new(key, f"deid:{participant_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") % 361 - 180, "D" + digest[4:10].hex().upper()


def test_deidentified_export_shifts_dates_and_drops_identifiers(client) -> None:
    pid = _populate(client)
    second = client.post(
        "/api/participants", json=enrolment(nhs_numbers(1)[0]), headers=login(client, "nurse")
    ).json()["id"]
    login(client, "stats")
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/exports/deidentified.zip").content))
    people = _rows(archive.read("participants.csv").decode())
    procs = _rows(archive.read("procedures.csv").decode())
    visits = _rows(archive.read("visits.csv").decode())
    assert list(people[0]) == DEID_TABLES["participants"]
    assert not people[0]["participant_id"].startswith("MORTON")
    assert "operator" not in procs[0]
    assert "description" not in _rows(archive.read("adverse_events.csv").decode())[0]
    # every date moves by its participant's offset, recomputed independently, so an export
    # that does not shift (or shifts by the wrong amount) fails; two participants, so that
    # at least one offset is non-zero (both zero: 1 key in 361², ~8e-6)
    offsets = {}
    for participant_id in (pid, second):
        offset, pseudonym = _expected_offset(client, participant_id)
        offsets[pseudonym] = offset
    assert any(offsets.values())
    assert sorted(p["participant_id"] for p in people) == sorted(offsets)
    enrolled = enrolment()["enrolment_date"]
    for person in people:
        moved = dt.date.fromisoformat(person["enrolment_date"]) - dt.date.fromisoformat(enrolled)
        assert moved.days == offsets[person["participant_id"]]
    for table, column, true_date in (
        (procs, "procedure_date", procedure()["procedure_date"]),
        (visits, "visit_date", followup()["visit_date"]),
    ):
        (row,) = table
        moved = dt.date.fromisoformat(row[column]) - dt.date.fromisoformat(true_date)
        assert moved.days == offsets[row["participant_id"]], (column, moved.days)
    interval = (
        dt.date.fromisoformat(visits[0]["visit_date"])
        - dt.date.fromisoformat(procs[0]["procedure_date"])
    ).days
    assert interval == 88
    whole = b"".join(archive.read(n) for n in archive.namelist()).decode()
    for secret in ("9434765919", "MORTON-RBH-0001", "Dr Example", "Cellulitis", "HYPERLINK"):
        assert secret not in whole


def test_deidentified_offsets_vary_by_participant(registry) -> None:
    from cryoneuro.registry.exports.deidentified import date_offset_days

    offsets = {date_offset_days(registry.settings, i) for i in range(1, 50)}
    assert len(offsets) > 30
    assert all(-180 <= o <= 180 for o in offsets)


def test_redcap_dictionary_and_records(client) -> None:
    _populate(client)
    login(client, "monitor")
    dictionary = client.get("/api/exports/redcap/dictionary.csv").text
    rows = _rows(dictionary)
    assert list(rows[0]) == DICTIONARY_COLUMNS
    assert rows[0]["Variable / Field Name"] == "record_id"
    names = {r["Variable / Field Name"] for r in rows}
    assert {"moxfq_q16", "eq5d5l_vas", "nrs_pain", "category"} <= names
    records = _rows(client.get("/api/exports/redcap/records.csv").text)
    instruments = [r["redcap_repeat_instrument"] for r in records]
    assert instruments == ["", "procedure", "followup", "adverse_event"]
    assert records[2]["nrs_pain"] == "3"
    assert records[3]["category"] == "3"  # infection is the 3rd safety category
    # every exported column is defined in the dictionary (or is a REDCap system column)
    system = {"redcap_repeat_instrument", "redcap_repeat_instance"}
    forms = {r["Form Name"] for r in rows}
    for column in records[0]:
        assert column in names | system | {f"{f}_complete" for f in forms}


def test_fhir_bundle_validates(client) -> None:
    _populate(client)
    login(client, "investigator")
    response = client.get("/api/exports/fhir.json")
    assert response.status_code == 200
    bundle = json.loads(response.text)
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("QuestionnaireResponse") == 1
    assert "Observation" in kinds
    qr = bundle["entry"][0]["resource"]
    assert qr["subject"]["identifier"]["value"] == "MORTON-RBH-0001"
    assert "9434765919" not in response.text


def test_data_entry_cannot_export(client) -> None:
    _populate(client)
    login(client, "nurse")
    for url in (
        "/api/exports/tidy.zip",
        "/api/exports/deidentified.zip",
        "/api/exports/redcap/records.csv",
        "/api/exports/fhir.json",
        "/api/exports/audit.csv",
    ):
        assert client.get(url).status_code == 403, url


def test_tidy_export_is_read_by_the_analysis_package(client, tmp_path) -> None:
    # one format, two users: what the registry writes, cryoneuro.analysis reads unchanged
    from cryoneuro.analysis.outcomes import outcome_values
    from cryoneuro.analysis.tidy import load_tidy

    pid = _populate(client)
    baseline = followup(
        visit_code="baseline",
        answers={"nrs": {"pain": 7}},
        visit_date=(dt.date.today() - dt.timedelta(days=97)).isoformat(),
    )
    assert (
        client.post(
            f"/api/participants/{pid}/visits", json=baseline, headers=login(client, "nurse")
        ).status_code
        == 201
    )
    login(client, "stats")
    path = tmp_path / "tidy.zip"
    path.write_bytes(client.get("/api/exports/tidy.zip").content)
    data = load_tidy(path)
    assert list(data.participants["participant_id"]) == ["MORTON-RBH-0001"]
    assert data.design == "rct"
    assert data.procedures["days_since_procedure"].tolist() == [0]
    # scored by cryoneuro.instruments when the registry saved the visit
    pain = data.scores[(data.scores["instrument"] == "nrs") & (data.scores["kind"] == "score")]
    assert sorted(pain["value"].astype(float)) == [3.0, 7.0]
    change = outcome_values(data, "pain")
    assert change[["visit_code", "day", "baseline", "value", "change"]].values.tolist() == [
        ["m3", 88, 7.0, 3.0, -4.0]
    ]
    # and the export passes the checks that run before any analysis, nothing left out
    from cryoneuro.analysis.validate import check

    assert check(data).exclusions == []
