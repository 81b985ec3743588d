"""The audit trail: every create/update/delete on an audited table, recorded automatically.

Hooked into flushes of :class:`RegistrySession`, so no service can forget it. The acting user
and the reason for change travel in ``session.info`` (set by :func:`acting`). Updates and
deletes without a reason are refused; any attempt to change or delete an audit entry is
refused here and, underneath, by database triggers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import AUDIT_ROLES, Actor
from cryoneuro.registry.errors import (
    AuditTamperError,
    ConflictError,
    ReasonForChangeRequiredError,
)
from cryoneuro.registry.models import AuditEntry, Base, utcnow

REDACTED = "[redacted]"


class RegistrySession(Session):
    """Session whose flushes write the audit trail.

    A unique-constraint violation at flush or commit becomes a :class:`ConflictError` (409):
    two requests can pass a service's duplicate check at the same moment (say, the same
    follow-up visit entered twice), and the database's constraint then stops the second —
    a conflict the user can resolve, not a server error. Found by benchmarks/registry_load.py.
    """

    def flush(self, objects: Any = None) -> None:
        try:
            super().flush(objects)
        except IntegrityError as exc:
            self._conflict(exc)

    def commit(self) -> None:
        try:
            super().commit()
        except IntegrityError as exc:
            self._conflict(exc)

    def _conflict(self, exc: IntegrityError) -> None:
        orig = exc.orig
        if type(orig).__name__ != "UniqueViolation" and "UNIQUE constraint failed" not in str(orig):
            raise exc
        self.rollback()
        raise ConflictError("this record was saved by another request at the same moment; "
                            "reload to see it") from None


@contextmanager
def acting(session: Session, actor: Actor, reason: str = "") -> Iterator[Session]:
    """Attribute changes made inside the block to ``actor``, with ``reason`` for edits."""
    previous = (session.info.get("actor"), session.info.get("reason"))
    session.info["actor"] = actor
    session.info["reason"] = reason
    try:
        yield session
        session.flush()
    finally:
        session.info["actor"], session.info["reason"] = previous


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return REDACTED
    return value


def _values(obj: Base, *, old: bool, only_changed: bool) -> dict[str, Any]:
    state = inspect(obj)
    result: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        changed = bool(hist.added or hist.deleted)
        if only_changed and not changed:
            continue
        if old:
            value = hist.deleted[0] if hist.deleted else (hist.unchanged[0] if hist.unchanged else None)
        else:
            value = getattr(obj, attr.key)
        result[attr.key] = REDACTED if attr.key in obj.__audit_redact__ else _jsonable(value)
    return result


def _row_id(obj: Base) -> str:
    # identity keys are not yet assigned to new objects in after_flush; read the columns
    values = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(v) for v in values)


@event.listens_for(RegistrySession, "before_flush")
def _check_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEntry):
            raise AuditTamperError("the audit trail is append-only: entries cannot change")
    needs_reason = [
        obj
        for obj in list(session.deleted)
        + [o for o in session.dirty if session.is_modified(o, include_collections=False)]
        if getattr(obj, "__audited__", False)
    ]
    if needs_reason and not (session.info.get("reason") or "").strip():
        table = needs_reason[0].__tablename__
        raise ReasonForChangeRequiredError(
            f"a reason for change is required to edit {table}", "reason"
        )


@event.listens_for(RegistrySession, "after_flush")
def _record(session: Session, _ctx: Any) -> None:
    actor: Actor = session.info.get("actor") or Actor.system()
    reason = session.info.get("reason") or ""
    now = utcnow()
    rows: list[dict[str, Any]] = []

    def add(obj: Base, action: str, old: dict | None, new: dict | None) -> None:
        rows.append({"occurred_at": now, "user_id": actor.user_id, "username": actor.username,
                     "action": action, "table_name": obj.__tablename__, "row_id": _row_id(obj),
                     "old_values": old, "new_values": new, "reason": reason})

    for obj in session.new:
        if getattr(obj, "__audited__", False):
            add(obj, "create", None, _values(obj, old=False, only_changed=False))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False) and session.is_modified(obj, include_collections=False):
            add(obj, "update", _values(obj, old=True, only_changed=True),
                _values(obj, old=False, only_changed=True))
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            add(obj, "delete", _values(obj, old=True, only_changed=False), None)
    if rows:
        session.connection().execute(insert(AuditEntry.__table__), rows)


AUDIT_COLUMNS = ["id", "occurred_at", "user_id", "username", "action", "table_name", "row_id",
                 "old_values", "new_values", "reason"]


def list_audit(session: Session, actor: Actor, *, table: str | None = None,
               row_id: str | None = None, limit: int = 500) -> list[AuditEntry]:
    """Newest entries first; only administrators and monitors may read the trail."""
    actor.require(AUDIT_ROLES, "read the audit trail")
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, 10000)))
    if table:
        query = query.where(AuditEntry.table_name == table)
    if row_id:
        query = query.where(AuditEntry.row_id == row_id)
    return list(session.scalars(query))


def audit_csv(session: Session, actor: Actor) -> str:
    """The whole trail as CSV (old/new values as JSON text), oldest first."""
    actor.require(AUDIT_ROLES, "export the audit trail")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_COLUMNS)
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        writer.writerow([
            entry.id, entry.occurred_at.isoformat() if entry.occurred_at else "", entry.user_id,
            entry.username, entry.action, entry.table_name, entry.row_id,
            json.dumps(entry.old_values, sort_keys=True) if entry.old_values is not None else "",
            json.dumps(entry.new_values, sort_keys=True) if entry.new_values is not None else "",
            entry.reason,
        ])
    return buffer.getvalue()
