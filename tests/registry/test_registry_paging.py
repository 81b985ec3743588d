"""The participant list in pages (issue 17 item 7): the light-row query returns what the
ORM list returned, pages put together give the whole list, and the API and the dashboard page
serve one page at a time with the total."""

from __future__ import annotations

import re

import pytest
from registry_helpers import PASSWORD, enrolment, login, nhs_numbers

from cryoneuro.registry.db import transaction
from cryoneuro.registry.schemas import EnrolmentIn
from cryoneuro.registry.services import participants

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _enrol(registry, count: int = 23) -> None:
    """``count`` participants, alternately at RBH and LTH, in both studies."""
    admin = registry.actor("admin")
    with transaction(registry.factory) as session:
        for i, nhs in enumerate(nhs_numbers(count, start=500)):
            body = enrolment(
                nhs=nhs, site="RBH" if i % 2 == 0 else "LTH", study="MORTON" if i % 3 else "STUMP"
            )
            if body["study_code"] == "STUMP":
                body["neuroma"] = {**body["neuroma"], "neuroma_type": "stump"}
            participants.enrol(session, registry.settings, admin, EnrolmentIn.model_validate(body))


def _old(session, actor) -> list[tuple]:
    return [
        (p.id, p.study_number, p.status, p.site_id)
        for p in participants.list_participants(session, actor)
    ]


@pytest.mark.parametrize("user", ["nurse", "leedsnurse", "admin"])
def test_rows_equal_the_orm_list_and_pages_add_up(registry, user) -> None:
    _enrol(registry)
    actor = registry.actor(user)
    with registry.factory() as session:
        want = _old(session, actor)
        rows, total = participants.participant_rows(session, actor)
        assert [tuple(r) for r in rows] == want
        assert total == len(want) > 0
        paged = []
        for offset in range(0, len(want) + 7, 7):
            page, n = participants.participant_rows(session, actor, limit=7, offset=offset)
            assert n == len(want)
            assert len(page) <= 7
            paged += [tuple(r) for r in page]
        assert paged == want


def test_api_pages_with_a_total_header(registry, client) -> None:
    _enrol(registry)
    login(client, "nurse")
    everything = client.get("/api/participants")
    assert everything.status_code == 200
    rows = everything.json()
    assert len(rows) == 12  # 23 enrolled, every other one at the nurse's site RBH
    assert everything.headers["x-total-count"] == "12"
    page = client.get("/api/participants?limit=5&offset=5")
    assert page.status_code == 200
    assert page.json() == rows[5:10]
    assert page.headers["x-total-count"] == "12"
    assert client.get("/api/participants?limit=5&offset=50").json() == []
    for bad in ("limit=0", f"limit={participants.PAGE_MAX + 1}", "offset=-1", "limit=x"):
        r = client.get(f"/api/participants?{bad}")
        assert r.status_code == 422, bad
        assert "limit" in r.text or "offset" in r.text


def test_dashboard_page_lists_one_page_of_participants(registry, client, monkeypatch) -> None:
    _enrol(registry)
    monkeypatch.setattr(participants, "PAGE_SIZE", 5)
    token = TOKEN.search(client.get("/login").text).group(1)
    form = {"username": "nurse", "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    with registry.factory() as session:
        numbers = [n for _, n, _, _ in _old(session, registry.actor("nurse"))]
    listed = re.compile(r'<li><a href="/participants/\d+">([^<]+)</a>')
    first = client.get("/")
    assert first.status_code == 200
    assert listed.findall(first.text) == numbers[:5]
    assert "page 1 of 3; 12 in all" in first.text
    assert 'href="/?page=2" rel="next"' in first.text
    last = client.get("/?page=3")
    assert listed.findall(last.text) == numbers[10:]
    assert 'href="/?page=2" rel="prev"' in last.text
    assert 'rel="next"' not in last.text
    assert client.get("/?page=0").status_code == 422
