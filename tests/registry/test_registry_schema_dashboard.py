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
    visit = VisitDefinition(code="m3", label="3 months", day=91, window_before_days=14,
                            window_after_days=21)
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
        p = participants.enrol(session, registry.settings, nurse,
                               EnrolmentIn.model_validate(enrolment()))
        clinical.record_procedure(session, nurse, p.id, ProcedureIn.model_validate(procedure()))
    with registry.factory() as session:
        board = dashboard(session, nurse)
        # procedure 90 days ago: 2 weeks and 1 month windows closed, 3 months open
        assert {v["visit_code"] for v in board["visits_overdue"]} == {"baseline", "w2", "m1"}
        assert {v["visit_code"] for v in board["visits_due"]} == {"m3"}
        assert board["recruitment"] == [{"study": "MORTON", "site": "RBH", "participants": 1}]
        assert dashboard(session, registry.actor("leedsnurse"))["totals"]["participants"] == 0
