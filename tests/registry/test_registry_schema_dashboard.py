"""The migration matches the models (no drift) and the dashboard's visit windows."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from registry_helpers import enrolment, procedure

from cryoneuro.registry.db import transaction
from cryoneuro.registry.models import Base, VisitDefinition
from cryoneuro.registry.schemas import EnrolmentIn, ProcedureIn
from cryoneuro.registry.services import clinical, participants
from cryoneuro.registry.services.dashboard import dashboard, visit_status


def test_migrations_match_the_models(registry) -> None:
    with registry.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_pg_migration_matches_the_models(pg_registry) -> None:
    with pg_registry.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_visit_status_windows() -> None:
    visit = VisitDefinition(
        code="m3", label="3 months", day=91, window_before_days=14, window_after_days=21
    )
    day0 = dt.date(2026, 1, 1)
    target = day0 + dt.timedelta(days=91)
    assert visit_status(visit, day0, False, target - dt.timedelta(days=15))[0] == "upcoming"
    assert visit_status(visit, day0, False, target - dt.timedelta(days=14))[0] == "due"
    assert visit_status(visit, day0, False, target + dt.timedelta(days=21))[0] == "due"
    assert visit_status(visit, day0, False, target + dt.timedelta(days=22))[0] == "overdue"
    assert visit_status(visit, day0, True, target + dt.timedelta(days=99))[0] == "done"


def test_dashboard_lists_due_and_overdue_visits(registry) -> None:
    nurse = registry.actor("nurse")
    with transaction(registry.factory) as session:
        p = participants.enrol(
            session, registry.settings, nurse, EnrolmentIn.model_validate(enrolment())
        )
        clinical.record_procedure(session, nurse, p.id, ProcedureIn.model_validate(procedure()))
    with registry.factory() as session:
        board = dashboard(session, nurse)
        # procedure 90 days ago: 2 weeks and 1 month windows closed, 3 months open
        assert {v["visit_code"] for v in board["visits_overdue"]} == {"baseline", "w2", "m1"}
        assert {v["visit_code"] for v in board["visits_due"]} == {"m3"}
        assert board["recruitment"] == [{"study": "MORTON", "site": "RBH", "participants": 1}]
        assert dashboard(session, registry.actor("leedsnurse"))["totals"]["participants"] == 0
        # long lists are cut to the most urgent, with the totals kept
        short = dashboard(session, nurse, limit=2)
        assert short["totals"]["visits_overdue"] == 3
        assert [v["visit_code"] for v in short["visits_overdue"]] == ["baseline", "w2"]


def test_vectorised_windows_equal_visit_status_for_every_participant() -> None:
    # the dashboard evaluates windows with NumPy; visit_status is the rule written out per visit
    import random
    from types import SimpleNamespace

    from cryoneuro.registry.services.dashboard import _open_windows

    rng = random.Random(3)
    visits = [
        VisitDefinition(code=c, label=c, day=d, window_before_days=b, window_after_days=a)
        for c, d, b, a in (
            ("baseline", 0, 60, 0),
            ("w2", 14, 3, 7),
            ("m1", 30, 7, 14),
            ("m3", 91, 14, 21),
            ("m12", 365, 30, 30),
        )
    ]
    studies = {1: SimpleNamespace(visits=visits), 2: SimpleNamespace(visits=visits[1:3])}
    today = dt.date(2026, 11, 25)
    followed, done = [], {}
    for pid in range(1, 400):
        day0 = today - dt.timedelta(days=rng.randint(-20, 500))
        followed.append((pid, rng.choice([1, 2]), f"P{pid}", day0))
        done[pid] = {v.code for v in visits if rng.random() < 0.3}
    expected = {"due": set(), "overdue": set()}
    for pid, study_id, _, day0 in followed:
        for v in studies[study_id].visits:
            state, opens, closes = visit_status(v, day0, v.code in done[pid], today)
            if state in expected:
                expected[state].add((pid, v.code, opens.isoformat(), closes.isoformat()))
    due, overdue, n_due, n_overdue = _open_windows(followed, studies, done, today, limit=10_000)
    got = {
        "due": {
            (x["participant_id"], x["visit_code"], x["window_opens"], x["window_closes"])
            for x in due
        },
        "overdue": {
            (x["participant_id"], x["visit_code"], x["window_opens"], x["window_closes"])
            for x in overdue
        },
    }
    assert got == expected
    assert (n_due, n_overdue) == (len(expected["due"]), len(expected["overdue"]))
    assert len(expected["due"]) > 10
    assert len(expected["overdue"]) > 100
    # the most urgent first: overdue sorted by the date the window closed
    assert [x["window_closes"] for x in overdue] == sorted(x["window_closes"] for x in overdue)
