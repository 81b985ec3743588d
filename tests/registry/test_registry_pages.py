"""Server-rendered pages: CSRF on every form, errors beside the field, role-aware pages."""

from __future__ import annotations

import re

from registry_helpers import PASSWORD, enrolment
from sqlalchemy import func, select

from cryoneuro.registry.models import Participant

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _token(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text[:500]
    return TOKEN.search(page.text).group(1)


def _login(client, username: str) -> None:
    token = _token(client, "/login")
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303


def _complete_enrolment(nhs: str = "9434765919") -> dict[str, str]:
    """The enrolment form a nurse would submit, flattened as the page posts it."""
    body = enrolment(nhs)
    form = {k: v for k, v in body.items() if not isinstance(v, dict | bool)}
    form["consented"] = "on"
    for k, v in body["eligibility"].items():
        form[f"eligibility.{k}"] = "true" if v else "false"
    for k, v in body["neuroma"].items():
        if not isinstance(v, list):
            form[f"neuroma.{k}"] = str(v)
    return form


def _enrol_form(client) -> str:
    form = _complete_enrolment()
    form["csrf_token"] = _token(client, "/enrol?study=MORTON")
    r = client.post("/enrol?study=MORTON", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]
    return r.headers["location"]


def test_login_required_and_csrf_checked(client) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    r = client.post("/login", data={"username": "nurse", "password": PASSWORD})
    assert r.status_code == 403
    assert "CSRF" in r.text
    token = _token(client, "/login")
    r = client.post(
        "/login", data={"username": "nurse", "password": "nope nope", "csrf_token": token}
    )
    assert r.status_code == 401
    assert "wrong user name or password" in r.text


def test_enrol_and_participant_page(client) -> None:
    _login(client, "nurse")
    location = _enrol_form(client)
    page = client.get(location)
    assert "MORTON-RBH-0001" in page.text
    assert "9434765919" not in page.text
    r = client.post(location + "/randomise", data={"csrf_token": "forged"})
    assert r.status_code == 403
    r = client.post(
        location + "/randomise",
        data={"csrf_token": _token(client, location)},
        follow_redirects=True,
    )
    assert re.search(r'id="allocation">(cryo|steroid)<', r.text)
    _login(client, "investigator")
    assert "9434765919" in client.get(location).text


def test_followup_errors_are_shown_beside_the_field(client) -> None:
    _login(client, "nurse")
    location = _enrol_form(client)
    url = location + "/followup"
    form = {
        "visit_code": "m1",
        "visit_date": enrolment()["enrolment_date"],
        "answers.nrs.pain": "12",
        "csrf_token": _token(client, url),
    }
    r = client.post(url, data=form)
    assert r.status_code == 422
    assert re.search(r'id="error-answers.nrs.pain"[^>]*>[^<]*0–10', r.text)
    assert 'value="12"' in r.text  # the user's answer is kept for correction
    form["answers.nrs.pain"] = "4"
    r = client.post(url, data=form, follow_redirects=False)
    assert r.status_code == 303


def test_enrol_errors_beside_fields_and_monitor_read_only(client) -> None:
    _login(client, "nurse")
    token = _token(client, "/enrol?study=MORTON")
    r = client.post(
        "/enrol?study=MORTON",
        data={
            "csrf_token": token,
            "study_code": "MORTON",
            "nhs_number": "1234567890",
            "age_at_enrolment_years": "x",
        },
    )
    assert r.status_code == 422
    assert 'id="error-age_at_enrolment_years"' in r.text
    _login(client, "monitor")
    assert client.get("/audit").status_code == 200
    assert client.get("/exports").status_code == 200
    r = client.post(
        "/enrol?study=MORTON",
        data={**_complete_enrolment(), "csrf_token": _token(client, "/")},
    )
    assert r.status_code == 403
    # a complete, valid form from a monitor left nothing behind
    with client.registry.factory() as session:
        assert session.scalar(select(func.count()).select_from(Participant)) == 0


def test_hostile_page_requests_are_4xx(client) -> None:
    _login(client, "nurse")
    for url in (
        "/participants/99999999999999999999",
        "/participants/0",
        "/participants/x",
        "/adverse-events/99999999999999999999",
        "/participants/-5/followup",
        "/enrol?study=' OR 1=1 --",
        "/enrol?study=NOSUCH",
    ):
        r = client.get(url)
        assert 400 <= r.status_code < 500, (url, r.status_code)
    # an unknown study is refused, a known one opens its form, no study opens the first
    assert client.get("/enrol?study=' OR 1=1 --").status_code == 404
    assert "Enrol a participant (STUMP)" in client.get("/enrol?study=STUMP").text
    assert "Enrol a participant (MORTON)" in client.get("/enrol").text
    location = _enrol_form(client)
    url = location + "/procedure"
    r = client.post(
        url,
        data={
            "csrf_token": _token(client, url),
            "plan": "{not json",
            "device_name": "x" * 100_000,
            "procedure_date": "yesterday",
        },
    )
    assert r.status_code == 422
    assert 'id="error-plan"' in r.text
    assert 'id="error-device_name"' in r.text
    assert 'id="error-procedure_date"' in r.text


def test_reintervention_form(client) -> None:
    _login(client, "nurse")
    location = _enrol_form(client)
    url = location + "/reintervention"
    r = client.post(
        url,
        data={
            "csrf_token": _token(client, url),
            "kind": "surgical_excision",
            "reintervention_date": enrolment()["enrolment_date"],
        },
        follow_redirects=True,
    )
    assert r.status_code == 200
    assert "surgical excision" in r.text
