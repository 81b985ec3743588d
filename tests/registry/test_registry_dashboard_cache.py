"""The dashboard's cache (issue 17 item 7): every kind of write that changes a count
invalidates it, also when the write is made by another server process (another engine and
cache on the same database), and a session with uncommitted writes never fills it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from registry_helpers import PASSWORD, adverse_event, enrolment, followup, nhs_numbers, procedure
from sqlalchemy import select

from cryoneuro.registry.audit import make_sessionmaker
from cryoneuro.registry.db import make_engine, transaction
from cryoneuro.registry.models import VisitNotDone
from cryoneuro.registry.schemas import AdverseEventIn, EnrolmentIn, FollowUpIn, ProcedureIn
from cryoneuro.registry.services import clinical, participants
from cryoneuro.registry.services import visit_status as not_done
from cryoneuro.registry.services.dashboard import (
    AggregateCache,
    dashboard,
    dashboard_page,
    outcome_summary,
)

TODAY = dt.date.today()


class Instance:
    """One server process's view: its own engine, sessions and dashboard cache."""

    def __init__(self, reg) -> None:
        self.engine = make_engine(reg.url)
        self.factory = make_sessionmaker(self.engine, reg.settings.keys)
        self.cache = AggregateCache()

    def board(self, actor) -> tuple[dict, list]:
        with self.factory() as session:
            return (
                dashboard(session, actor, cache=self.cache),
                outcome_summary(session, actor, cache=self.cache),
            )

    def fresh(self, actor) -> tuple[dict, list]:
        with self.factory() as session:
            return dashboard(session, actor, cache=None), outcome_summary(
                session, actor, cache=None
            )


def _enrol(session, reg, actor, nhs: str, with_procedure: bool = True) -> int:
    body = enrolment(
        nhs,
        enrolment_date=(TODAY - dt.timedelta(days=200)).isoformat(),
        consent_date=(TODAY - dt.timedelta(days=201)).isoformat(),
    )
    p = participants.enrol(session, reg.settings, actor, EnrolmentIn.model_validate(body))
    if with_procedure:
        clinical.record_procedure(
            session,
            actor,
            p.id,
            ProcedureIn.model_validate(
                procedure(procedure_date=(TODAY - dt.timedelta(days=100)).isoformat())
            ),
        )
    return p.id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_write_kind_invalidates_the_other_instances_cache(request, backend) -> None:
    reg = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    nurse = reg.actor("nurse")
    numbers = iter(nhs_numbers(10, start=700))
    with transaction(reg.factory) as session:
        pids = [_enrol(session, reg, nurse, next(numbers)) for _ in range(3)]
        bare = _enrol(session, reg, nurse, next(numbers), with_procedure=False)
    reader, writer = Instance(reg), Instance(reg)

    def write(action: Callable) -> None:
        with transaction(writer.factory) as session:
            action(session)

    def not_done_row(session) -> int:
        return session.scalar(select(VisitNotDone.id).where(VisitNotDone.participant_id == pids[1]))

    # (what the write does, the total it changes and by how much)
    writes: list[tuple[str, Callable, str, int]] = [
        (
            "follow-up",
            lambda s: clinical.record_followup(
                s, nurse, pids[0], FollowUpIn.model_validate(followup(visit_code="m3"))
            ),
            "followup_visits",
            1,
        ),
        (
            "visit not done",
            lambda s: not_done.mark_not_done(
                s,
                nurse,
                pids[1],
                not_done.VisitNotDoneIn(
                    visit_code="m1", reason="lost_to_follow_up", recorded_date=TODAY
                ),
            ),
            "visits_overdue",
            -1,
        ),
        (
            "not-done record retracted",
            lambda s: not_done.retract_not_done(s, nurse, not_done_row(s), "came after all"),
            "visits_overdue",
            1,
        ),
        (
            "procedure",
            lambda s: clinical.record_procedure(
                s,
                nurse,
                bare,
                ProcedureIn.model_validate(
                    procedure(procedure_date=(TODAY - dt.timedelta(days=100)).isoformat())
                ),
            ),
            "procedures",
            1,
        ),
        ("enrolment", lambda s: _enrol(s, reg, nurse, next(numbers)), "participants", 1),
        (
            "withdrawal",
            lambda s: participants.withdraw(s, nurse, pids[2], TODAY, "moved away"),
            "visits_overdue",
            -3,  # baseline, w2 and m1 of the withdrawn participant no longer listed
        ),
        (
            "adverse event",
            lambda s: clinical.report_adverse_event(
                s, nurse, pids[0], AdverseEventIn.model_validate(adverse_event(serious=True))
            ),
            "serious_adverse_events",
            1,
        ),
    ]
    for name, action, total, change in writes:
        before, _ = reader.board(nurse)
        hits = reader.cache.hits
        assert reader.board(nurse)[0] == before  # unchanged database: served from the cache
        assert reader.cache.hits > hits, name
        write(action)
        after = reader.board(nurse)
        assert after == reader.fresh(nurse), name  # never the stale board
        assert after[0]["totals"][total] - before["totals"][total] == change, name
    # the follow-up's pain score reached the outcome summary too
    pain = [r for s in reader.board(nurse)[1] for r in s["pain"] if r["visit_code"] == "m3"]
    assert [(r["n"], r["mean"]) for r in pain] == [(1, 3.0)]
    # the page's combined call gives the same as the two views
    with reader.factory() as session:
        assert dashboard_page(session, nurse, cache=reader.cache) == reader.fresh(nurse)
    for instance in (reader, writer):
        instance.engine.dispose()


def test_uncommitted_writes_neither_fill_nor_read_the_cache(registry) -> None:
    nurse = registry.actor("nurse")
    with transaction(registry.factory) as session:
        pid = _enrol(session, registry, nurse, nhs_numbers(1, start=800)[0])
    instance = Instance(registry)
    before, _ = instance.board(nurse)
    with instance.factory() as session:
        clinical.record_followup(
            session, nurse, pid, FollowUpIn.model_validate(followup(visit_code="m3"))
        )
        session.flush()
        # the session sees its own visit; the cache is neither read nor filled from this view
        seen = dashboard(session, nurse, cache=instance.cache)
        assert seen["totals"]["followup_visits"] == before["totals"]["followup_visits"] + 1
        session.rollback()
    assert instance.board(nurse)[0] == before == instance.fresh(nurse)[0]
    instance.engine.dispose()


def test_dashboard_page_after_a_follow_up_form(client) -> None:
    # through the web app: the page shows the visit just entered (same process, same cache)
    import re

    registry = client.registry
    nurse = registry.actor("nurse")
    with transaction(registry.factory) as session:
        pid = _enrol(session, registry, nurse, nhs_numbers(1, start=900)[0])
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    form = {"username": "nurse", "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303

    def visits_shown() -> int:
        page = client.get("/").text
        return int(re.search(r'id="total-followup_visits">(\d+)<', page).group(1))

    shown = visits_shown()
    assert visits_shown() == shown
    response = client.post(
        f"/participants/{pid}/followup",
        data={
            "csrf_token": token,
            "visit_code": "m3",
            "visit_date": (TODAY - dt.timedelta(days=2)).isoformat(),
            "answers.nrs.pain": "4",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert visits_shown() == shown + 1
