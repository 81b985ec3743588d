"""The migration matches the models (no drift) and the dashboard's visit windows."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from registry_helpers import enrolment, followup, nhs_numbers, procedure

from cryoneuro.registry.db import transaction
from cryoneuro.registry.models import Base, VisitDefinition, VisitNotDone
from cryoneuro.registry.schemas import EnrolmentIn, FollowUpIn, ProcedureIn
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dashboard_windows_equal_visit_status_for_every_participant(request, backend) -> None:
    # the dashboard evaluates the windows with NumPy and subtracts the visits done (a cached
    # part each); visit_status is the rule written out per visit
    import random

    from sqlalchemy import select

    from cryoneuro.registry.models import Participant, Study
    from cryoneuro.registry.services import visit_status as not_done_service

    reg = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    nurse = reg.actor("nurse")
    rng = random.Random(3)
    today = dt.date.today()
    with transaction(reg.factory) as session:
        visits = {s.id: list(s.visits) for s in session.scalars(select(Study))}
        for n, nhs in enumerate(nhs_numbers(40, start=500)):
            study = rng.choice(["MORTON", "STUMP"])
            site = "LTH" if n % 7 == 0 else "RBH"  # another site's participants are not counted
            body = enrolment(
                nhs,
                study=study,
                site=site,
                enrolment_date=(today - dt.timedelta(days=700)).isoformat(),
                consent_date=(today - dt.timedelta(days=701)).isoformat(),
            )
            if study == "STUMP":
                body["neuroma"] = {**body["neuroma"], "neuroma_type": "stump"}
            actor = reg.actor("admin")
            p = participants.enrol(session, reg.settings, actor, EnrolmentIn.model_validate(body))
            if n % 9 == 4:
                continue  # no procedure: no day 0, no visits due
            for _ in range(1 + (n % 5 == 0)):  # some have two procedures: day 0 is the first
                day0 = today - dt.timedelta(days=rng.randint(-20, 500))
                clinical.record_procedure(
                    session,
                    actor,
                    p.id,
                    ProcedureIn.model_validate(procedure(procedure_date=day0.isoformat())),
                )
            for visit in visits[p.study_id]:
                roll = rng.random()
                if roll < 0.25:
                    clinical.record_followup(
                        session,
                        actor,
                        p.id,
                        FollowUpIn.model_validate(followup(visit_code=visit.code)),
                    )
                elif roll < 0.35:
                    not_done_service.mark_not_done(
                        session,
                        actor,
                        p.id,
                        not_done_service.VisitNotDoneIn(
                            visit_code=visit.code, reason="lost_to_follow_up", recorded_date=today
                        ),
                    )
            if n % 11 == 3:
                participants.withdraw(session, actor, p.id, today, "moved away")
    expected: dict[str, set] = {"due": set(), "overdue": set()}
    with reg.factory() as session:
        for p in session.scalars(select(Participant)):
            if p.status != "enrolled" or not p.procedures or p.site_id not in nurse.site_ids:
                continue
            day0 = min(x.procedure_date for x in p.procedures)
            done = {v.visit_code for v in p.visits} | {
                r.visit_code
                for r in session.scalars(
                    select(VisitNotDone).where(VisitNotDone.participant_id == p.id)
                )
            }
            for v in visits[p.study_id]:
                state, opens, closes = visit_status(v, day0, v.code in done, today)
                if state in expected:
                    expected[state].add((p.id, v.code, opens.isoformat(), closes.isoformat()))
        board = dashboard(session, nurse, today=today, limit=10_000)
        short = dashboard(session, nurse, today=today, limit=5)
    got = {
        kind: {
            (x["participant_id"], x["visit_code"], x["window_opens"], x["window_closes"])
            for x in board[f"visits_{kind}"]
        }
        for kind in ("due", "overdue")
    }
    assert got == expected
    assert board["totals"]["visits_due"] == len(expected["due"]) > 3
    assert board["totals"]["visits_overdue"] == len(expected["overdue"]) > 50
    # the most urgent first: sorted by the date the window closes, then participant
    for kind in ("due", "overdue"):
        order = sorted(expected[kind], key=lambda x: (x[3], x[0]))
        listed = [(x["participant_id"], x["visit_code"]) for x in short[f"visits_{kind}"]]
        assert listed == [(x[0], x[1]) for x in order[:5]]
        assert short["totals"][f"visits_{kind}"] == len(expected[kind])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0011_adds_and_removes_the_audit_index(request, backend) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from cryoneuro.registry.db import make_engine
    from cryoneuro.registry.migrate import alembic_config, current_revision, upgrade

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")

    def audit_indexes() -> set[str]:
        engine = make_engine(url)
        try:
            return {ix["name"] for ix in inspect(engine).get_indexes("audit_entry")}
        finally:
            engine.dispose()

    upgrade(url, "0010")
    assert "ix_audit_entry_table_id" not in audit_indexes()
    upgrade(url, "0011")
    assert current_revision(url) == "0011"
    assert "ix_audit_entry_table_id" in audit_indexes()
    command.downgrade(alembic_config(url), "0010")
    assert "ix_audit_entry_table_id" not in audit_indexes()
    assert current_revision(url) == "0010"
