"""Two requests that pass the duplicate check at the same moment: 409, never a 500.

Found by the load test (benchmarks/registry_load.py): two clients entering the same
participant's visit concurrently both saw "not recorded yet"; PostgreSQL's unique constraint
stopped the second insert, which surfaced as a server error.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from registry_helpers import enrolment, procedure
from sqlalchemy import func, select

from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import ConflictError
from cryoneuro.registry.models import AuditEntry, FollowUpVisit
from cryoneuro.registry.schemas import EnrolmentIn, FollowUpIn, ProcedureIn
from cryoneuro.registry.services import clinical, participants


def test_simultaneous_duplicate_visit_is_a_conflict_on_postgres(pg_registry) -> None:
    reg = pg_registry
    nurse = reg.actor("nurse")
    with transaction(reg.factory) as session:
        pid = participants.enrol(
            session, reg.settings, nurse, EnrolmentIn.model_validate(enrolment())
        ).id
        clinical.record_procedure(session, nurse, pid, ProcedureIn.model_validate(procedure()))
    visit = FollowUpIn.model_validate(
        {
            "visit_code": "m3",
            "visit_date": (dt.date.today() - dt.timedelta(days=2)).isoformat(),
            "answers": {"nrs": {"pain": 4}},
        }
    )

    first = reg.factory()
    clinical.record_followup(first, nurse, pid, visit)  # inserted, not yet committed
    outcome: list[BaseException | None] = []

    def second() -> None:
        # passes the duplicate check (the first insert is not visible yet), then its insert
        # waits on the unique index until the first transaction ends
        try:
            with transaction(reg.factory) as session:
                clinical.record_followup(session, nurse, pid, visit)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), "the second insert should be waiting on the first transaction"
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConflictError)
    assert "another request" in str(outcome[0])
    with reg.factory() as session:
        assert session.scalar(select(func.count()).select_from(FollowUpVisit)) == 1
        # one visit, one audit entry for it: the refused insert left nothing behind
        assert (
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.table_name == "followup_visit")
            )
            == 1
        )


def test_a_non_unique_integrity_error_is_not_disguised(registry) -> None:
    from sqlalchemy.exc import IntegrityError

    from cryoneuro.registry.models import Participant

    # the error comes at flush/commit, after the statements that provoke it
    with pytest.raises(IntegrityError), registry.factory() as session:  # noqa: PT012
        session.add(
            Participant(
                study_id=999_999,
                site_id=999_999,
                study_number="X",
                sex="female",
                age_at_enrolment_years=40,
                enrolment_date=dt.date.today(),
            )
        )
        session.flush()
    assert not issubclass(ConflictError, IntegrityError)


def test_oversized_bodies_are_refused_and_headers_set(client) -> None:
    # the ASGI middleware (web/middleware.py): 413 before the body is read, headers always
    big = client.post(
        "/api/login",
        content=b"x" * 10,
        headers={"content-length": "5000000", "content-type": "application/json"},
    )
    assert big.status_code == 413
    assert big.json()["field"] == "body"
    bad = client.post("/api/login", content=b"{}", headers={"content-length": "12abc"})
    assert bad.status_code == 413
    for response in (big, client.get("/login"), client.get("/api/dashboard")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
