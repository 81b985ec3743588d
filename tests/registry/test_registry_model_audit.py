"""Data model, NHS numbers, identifiers and the append-only audit trail."""

from __future__ import annotations

import pytest
from registry_helpers import adverse_event, enrolment, nhs_numbers
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DatabaseError

from cryoneuro.registry import audit
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import (
    AuditTamperError,
    PermissionDeniedError,
    ReasonForChangeRequiredError,
    RegistryInputError,
)
from cryoneuro.registry.models import AdverseEvent, AuditEntry, Participant, ParticipantIdentifier
from cryoneuro.registry.nhs import normalise_nhs_number
from cryoneuro.registry.schemas import AdverseEventIn, EnrolmentIn
from cryoneuro.registry.services import clinical, participants


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", "943-476-5919"])
def test_valid_nhs_numbers(value: str) -> None:
    assert normalise_nhs_number(value) == "9434765919"


@pytest.mark.parametrize(
    "value",
    ["9434765918", "943476591", "94347659190", "abcdefghij", "", "١٢٣٤٥٦٧٨٩٠", "9990000017"],
)
def test_invalid_nhs_numbers_name_the_field(value: str) -> None:
    with pytest.raises(RegistryInputError) as info:
        normalise_nhs_number(value)
    assert info.value.field == "nhs_number"


def test_check_digit_ten_is_invalid() -> None:
    # 000000060: sum = 6*3=18? find a nine-digit stem whose check would be 10 and refuse it.
    from cryoneuro.registry.nhs import nhs_check_digit

    stem = next(f"{n:09d}" for n in range(1000) if nhs_check_digit(f"{n:09d}") is None)
    for last in "0123456789":
        with pytest.raises(RegistryInputError):
            normalise_nhs_number(stem + last)


def test_migration_creates_every_table(registry) -> None:
    names = set(inspect(registry.engine).get_table_names())
    for table in (
        "study",
        "site",
        "app_user",
        "participant",
        "participant_identifier",
        "consent",
        "eligibility_answer",
        "neuroma",
        "procedure",
        "followup_visit",
        "adverse_event",
        "reintervention",
        "audit_entry",
        "randomisation_slot",
    ):
        assert table in names


def _enrol(reg, actor="nurse", **kw):
    with transaction(reg.factory) as session:
        p = participants.enrol(
            session, reg.settings, reg.actor(actor), EnrolmentIn.model_validate(enrolment(**kw))
        )
        return p.id


def test_nhs_number_is_encrypted_and_visible_only_to_some_roles(registry) -> None:
    pid = _enrol(registry)
    with registry.factory() as session:
        stored = session.scalar(select(ParticipantIdentifier))
        assert "9434765919" not in stored.nhs_number_encrypted
        assert "9434765919" not in stored.nhs_number_hash
        p = participants.get_participant(session, registry.actor("investigator"), pid)
        seen = participants.participant_summary(
            session, registry.settings, registry.actor("investigator"), p
        )
        assert seen["nhs_number"] == "9434765919"
        for role in ("nurse", "monitor", "stats"):
            summary = participants.participant_summary(
                session, registry.settings, registry.actor(role), p
            )
            assert "nhs_number" not in summary
        # and it is never in the audit trail in clear
        for entry in session.scalars(select(AuditEntry)):
            assert "9434765919" not in str(entry.new_values)


def test_every_create_is_audited_with_user(registry) -> None:
    pid = _enrol(registry)
    with registry.factory() as session:
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "participant", AuditEntry.row_id == str(pid)
            )
        ).all()
        assert [e.action for e in entries] == ["create"]
        assert entries[0].username == "nurse"
        assert entries[0].new_values["study_number"] == "MORTON-RBH-0001"
        tables = {
            e.table_name
            for e in session.scalars(select(AuditEntry).where(AuditEntry.username == "nurse"))
        }
        assert {
            "participant",
            "participant_identifier",
            "consent",
            "eligibility_answer",
            "neuroma",
        } <= tables


def test_edit_needs_reason_and_records_old_and_new(registry) -> None:
    pid = _enrol(registry)
    with transaction(registry.factory) as session:
        ae = clinical.report_adverse_event(
            session,
            registry.actor("nurse"),
            pid,
            AdverseEventIn.model_validate(adverse_event(outcome="recovering")),
        )
        ae_id = ae.id
    with pytest.raises(RegistryInputError) as info, transaction(registry.factory) as session:
        clinical.edit_record(
            session, registry.actor("nurse"), "adverse_event", ae_id, {"outcome": "recovered"}, ""
        )
    assert info.value.field == "reason"
    # A direct ORM change without a reason is refused at flush time too.
    # the error comes at flush/commit, after the statements that provoke it
    with pytest.raises(ReasonForChangeRequiredError), transaction(registry.factory) as session:  # noqa: PT012
        session.get(AdverseEvent, ae_id).outcome = "recovered"
        session.flush()
    with transaction(registry.factory) as session:
        clinical.edit_record(
            session,
            registry.actor("nurse"),
            "adverse_event",
            ae_id,
            {"outcome": "recovered"},
            "resolved at 2-week call",
        )
    with registry.factory() as session:
        update = session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "adverse_event", AuditEntry.action == "update"
            )
        ).one()
        assert update.old_values == {"outcome": "recovering"}
        assert update.new_values == {"outcome": "recovered"}
        assert update.reason == "resolved at 2-week call"
        assert update.username == "nurse"


def test_audit_trail_cannot_be_altered_through_the_orm(registry) -> None:
    _enrol(registry)
    # the error comes at flush/commit, after the statements that provoke it
    with pytest.raises(AuditTamperError), transaction(registry.factory) as session:  # noqa: PT012
        entry = session.scalars(select(AuditEntry)).first()
        entry.reason = "tampered"
        session.flush()
    # the error comes at flush/commit, after the statements that provoke it
    with pytest.raises(AuditTamperError), transaction(registry.factory) as session:  # noqa: PT012
        session.delete(session.scalars(select(AuditEntry)).first())
        session.flush()
    with registry.factory() as session:
        assert not session.scalars(select(AuditEntry).where(AuditEntry.reason == "tampered")).all()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_database_rejects_audit_update_and_delete(backend, request) -> None:
    reg = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    _enrol(reg)
    for statement in ("UPDATE audit_entry SET reason = 'x'", "DELETE FROM audit_entry"):
        with pytest.raises(DatabaseError, match="append-only"), reg.engine.begin() as conn:
            conn.execute(text(statement))
    with reg.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM audit_entry WHERE reason = 'x'")).scalar() == 0
        )
        assert conn.execute(text("SELECT count(*) FROM audit_entry")).scalar() > 0


def test_audit_visible_to_monitor_not_to_data_entry_and_exports_csv(registry) -> None:
    _enrol(registry)
    with registry.factory() as session:
        assert audit.list_audit(session, registry.actor("monitor"))
        with pytest.raises(PermissionDeniedError):
            audit.list_audit(session, registry.actor("nurse"))
        csv_text = audit.audit_csv(session, registry.actor("monitor"))
    header = csv_text.splitlines()[0].split(",")
    assert header == audit.AUDIT_COLUMNS
    assert "participant" in csv_text


def test_duplicate_nhs_number_and_ineligible_are_refused(registry) -> None:
    _enrol(registry)
    from cryoneuro.registry.errors import ConflictError

    with pytest.raises(ConflictError):
        _enrol(registry)
    other = nhs_numbers(1)[0]
    body = enrolment(other)
    body["eligibility"]["coagulopathy"] = True
    with pytest.raises(RegistryInputError) as info, transaction(registry.factory) as session:
        participants.enrol(
            session,
            registry.settings,
            registry.actor("nurse"),
            EnrolmentIn.model_validate(body),
        )
    assert info.value.field == "eligibility.coagulopathy"


def test_data_entry_cannot_reach_another_sites_participant(registry) -> None:
    pid = _enrol(registry)
    from cryoneuro.registry.errors import NotFoundError

    with registry.factory() as session, pytest.raises(NotFoundError):
        participants.get_participant(session, registry.actor("leedsnurse"), pid)
    with pytest.raises(PermissionDeniedError):
        _enrol(registry, actor="monitor", nhs=nhs_numbers(1)[0])
    with registry.factory() as session:
        # the own site's nurse does reach it (so the 404 above is about the site), the other
        # site's nurse cannot write to it either, and the refused enrolment left nothing
        assert participants.get_participant(session, registry.actor("nurse"), pid).id == pid
        with pytest.raises(NotFoundError):
            clinical.report_adverse_event(
                session,
                registry.actor("leedsnurse"),
                pid,
                AdverseEventIn.model_validate(adverse_event()),
            )
        session.rollback()
        assert session.scalar(select(func.count()).select_from(Participant)) == 1
