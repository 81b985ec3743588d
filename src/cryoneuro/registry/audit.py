"""The audit trail: every create/update/delete on an audited table, recorded automatically,
plus events that change no row (log-ins, exports, NHS-number views), in a tamper-evident chain.

Hooked into flushes of :class:`RegistrySession`, so no service can forget it. The acting user
and the reason for change travel in ``session.info`` (set by :func:`acting`). Updates and
deletes without a reason are refused; any attempt to change or delete an audit entry is
refused here and, underneath, by database triggers.

**Chain** (issue 13). Triggers stop the application, not someone with the database owner's
password. So each entry stores ``entry_hash = HMAC-SHA256(audit_key, previous entry_hash | canonical
JSON of the entry)``, ids are consecutive, and ``registry_setting`` keeps the chain's start
and its head (last id and hash, with their own HMAC). Without the key file nobody can
recompute the chain after changing, deleting or inserting an entry, and
:func:`verify_chain` (``cryoneuro audit verify``) names the first entry that does not fit.
Appends are serialised by locking the head row (``SELECT … FOR UPDATE``; SQLite's single
writer does the same), so ids follow commit order. Entries written before migration 0004
predate the chain and are reported as such.

**Scope.** Each entry carries the site it concerns; administrators read the whole trail,
monitors only entries of their sites (entries about accounts, log-ins and study set-up have
no site and are for administrators).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.util import identity_key

from cryoneuro.registry.auth import AUDIT_ROLES, Actor
from cryoneuro.registry.csvsafe import safe_row
from cryoneuro.registry.db import write_engine
from cryoneuro.registry.errors import (
    AuditTamperError,
    ConflictError,
    ReasonForChangeRequiredError,
    RegistryError,
)
from cryoneuro.registry.keys import RegistryKeys
from cryoneuro.registry.models import (
    AuditEntry,
    Base,
    Participant,
    Procedure,
    RegistrySetting,
    Role,
    utcnow,
)

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
        raise ConflictError(
            "this record was saved by another request at the same moment; reload to see it"
        ) from None


def make_sessionmaker(engine: Engine, keys: RegistryKeys | None = None) -> sessionmaker[Session]:
    """Audited sessions (:class:`RegistrySession`) that keep loaded attributes after commit
    (pages render after the commit).

    ``keys`` gives the audit key that chains audit entries (see the module docstring); a
    session without it can read but cannot write audited changes. It lives here, beside the
    session class it makes, rather than in db.py, which stays below the audit trail.
    """
    info = {"audit_key": keys.audit_key} if keys is not None else {}
    return sessionmaker(bind=engine, class_=RegistrySession, expire_on_commit=False, info=info)


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
            value = (
                hist.deleted[0] if hist.deleted else (hist.unchanged[0] if hist.unchanged else None)
            )
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
    if any(isinstance(obj, AuditEntry) for obj in session.new):
        raise AuditTamperError(
            "audit entries are written by audit.py only (log_event), so that "
            "each is a link of the chain"
        )
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


def _site_of(session: Session, obj: Base, cache: dict[tuple[str, int], int | None]) -> int | None:
    """The site an audited row concerns: its own ``site_id``, else its participant's (or its
    procedure's participant's); None for study set-up and accounts."""
    site = getattr(obj, "site_id", None)
    if isinstance(site, int):
        return site
    for attr, query in (
        (
            "participant_id",
            select(Participant.site_id).where(
                Participant.id == getattr(obj, "participant_id", None)
            ),
        ),
        (
            "procedure_id",
            select(Participant.site_id)
            .join(Procedure, Procedure.participant_id == Participant.id)
            .where(Procedure.id == getattr(obj, "procedure_id", None)),
        ),
    ):
        value = getattr(obj, attr, None)
        if isinstance(value, int):
            if (attr, value) not in cache and attr == "participant_id":
                # the participant is usually loaded already (the service checked its site)
                loaded = session.identity_map.get(identity_key(Participant, value))
                if isinstance(loaded, Participant) and "site_id" in loaded.__dict__:
                    cache[(attr, value)] = loaded.site_id
            if (attr, value) not in cache:
                cache[(attr, value)] = session.connection().execute(query).scalar()
            return cache[(attr, value)]
    return None


@event.listens_for(RegistrySession, "after_flush")
def _record(session: Session, _ctx: Any) -> None:
    actor: Actor = session.info.get("actor") or Actor.system()
    reason = session.info.get("reason") or ""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    sites: dict[tuple[str, int], int | None] = {}

    def add(obj: Base, action: str, old: dict | None, new: dict | None) -> None:
        rows.append(
            {
                "occurred_at": now,
                "user_id": actor.user_id,
                "username": actor.username,
                "action": action,
                "table_name": obj.__tablename__,
                "row_id": _row_id(obj),
                "old_values": old,
                "new_values": new,
                "reason": reason,
                "site_id": _site_of(session, obj, sites),
            }
        )

    for obj in session.new:
        if getattr(obj, "__audited__", False):
            add(obj, "create", None, _values(obj, old=False, only_changed=False))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False) and session.is_modified(
            obj, include_collections=False
        ):
            add(
                obj,
                "update",
                _values(obj, old=True, only_changed=True),
                _values(obj, old=False, only_changed=True),
            )
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            add(obj, "delete", _values(obj, old=True, only_changed=False), None)
    if rows:
        append_entries(session, rows)


# --- the chain --------------------------------------------------------------------------------

CHAIN_START = "audit_chain_start"
CHAIN_HEAD = "audit_chain_head"
GENESIS = "0" * 64


class AuditKeyMissingError(RegistryError):
    """An audited write without the audit key (a session made without the key file)."""

    status_code = 500


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes an entry's HMAC covers: every column but the hash, as it reads back from
    either database (UTC microseconds, JSON with sorted keys)."""
    payload = [
        entry["id"],
        _utc_text(entry["occurred_at"]),
        entry["user_id"],
        entry["username"],
        entry["action"],
        entry["table_name"],
        entry["row_id"],
        entry["old_values"],
        entry["new_values"],
        entry["reason"] or "",
        entry["site_id"],
    ]
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def link(key: bytes, previous_hash: str, entry: dict[str, Any]) -> str:
    return hmac.new(
        key, previous_hash.encode() + b"|" + canonical(entry), hashlib.sha256
    ).hexdigest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _setting(session: Session, name: str, lock: bool = False) -> str | None:
    query = select(RegistrySetting.value).where(RegistrySetting.name == name)
    if lock:
        query = query.with_for_update()
    return session.connection().execute(query).scalar()


def start_chain(session: Session, key: bytes) -> None:
    """Record where the chain starts (entries up to here predate it) and its empty head."""
    if _setting(session, CHAIN_HEAD) is not None:
        return
    last = session.connection().execute(select(func.max(AuditEntry.id))).scalar() or 0
    now = utcnow()
    session.connection().execute(
        insert(RegistrySetting.__table__),
        [
            {
                "name": CHAIN_START,
                "value": f"{last}:{_mac(key, f'start:{last}')}",
                "updated_at": now,
            },
            {
                "name": CHAIN_HEAD,
                "value": f"{last}:{GENESIS}:{_mac(key, f'head:{last}:{GENESIS}')}",
                "updated_at": now,
            },
        ],
    )


#: ``session.info`` flag: audit entries were appended in the session's open transaction (set
#: by :func:`append_entries`, cleared when the transaction ends). Caches validated by audit
#: ids (services/dashboard.py) stay out of such a session: its view may yet be rolled back.
AUDIT_PENDING = "audit_pending"


@event.listens_for(RegistrySession, "after_transaction_end")
def _transaction_ended(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction: committed or rolled back
        session.info.pop(AUDIT_PENDING, None)


def append_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert audit rows as the next links of the chain (ids and hashes assigned here)."""
    key = session.info.get("audit_key")
    if key is None:
        raise AuditKeyMissingError("audited changes need the registry key file (audit key)")
    session.info[AUDIT_PENDING] = True
    head = _setting(session, CHAIN_HEAD, lock=True)
    if head is None:
        start_chain(session, key)
        head = _setting(session, CHAIN_HEAD, lock=True)
    last_text, previous, _ = head.split(":")
    last = int(last_text)
    for row in rows:
        last += 1
        row["id"] = last
        row["old_values"] = json.loads(json.dumps(row["old_values"]))  # as it will read back
        row["new_values"] = json.loads(json.dumps(row["new_values"]))
        row["entry_hash"] = previous = link(key, previous, row)
    session.connection().execute(insert(AuditEntry.__table__), rows)
    session.connection().execute(
        update(RegistrySetting.__table__)
        .where(RegistrySetting.name == CHAIN_HEAD)
        .values(
            value=f"{last}:{previous}:{_mac(key, f'head:{last}:{previous}')}", updated_at=utcnow()
        )
    )


@dataclass
class ChainReport:
    """What :func:`verify_chain` found: ``problem`` is None when the trail is intact."""

    checked: int
    before_chain: int
    problem: str | None = None
    first_bad_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        c: getattr(entry, c)
        for c in (
            "id",
            "occurred_at",
            "user_id",
            "username",
            "action",
            "table_name",
            "row_id",
            "old_values",
            "new_values",
            "reason",
            "site_id",
        )
    }


def verify_chain(session: Session, key: bytes) -> ChainReport:
    """Walk the trail in id order; report the first altered, deleted or inserted entry."""
    start = _setting(session, CHAIN_START)
    head = _setting(session, CHAIN_HEAD)
    total = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    if start is None or head is None:
        return ChainReport(
            0,
            total,
            None if total == 0 else "the chain has not been started (no keys registered yet)",
        )
    start_text, start_mac = start.split(":")
    start_id = int(start_text)
    if not hmac.compare_digest(start_mac, _mac(key, f"start:{start_id}")):
        return ChainReport(
            0, 0, "the chain's start record was altered (or the audit key is not this database's)"
        )
    head_text, head_hash, head_mac = head.split(":")
    head_id = int(head_text)
    if not hmac.compare_digest(head_mac, _mac(key, f"head:{head_id}:{head_hash}")):
        return ChainReport(0, 0, "the chain's head record was altered")
    before = (
        session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.id <= start_id)
        )
        or 0
    )
    previous, expected, checked = GENESIS, start_id + 1, 0
    query = (
        select(AuditEntry)
        .where(AuditEntry.id > start_id)
        .order_by(AuditEntry.id)
        .execution_options(yield_per=1000)
    )
    for entry in session.scalars(query):
        if entry.id > head_id:
            return ChainReport(
                checked,
                before,
                f"entry {entry.id} was inserted outside the "
                f"registry (the trail ends at entry {head_id})",
                entry.id,
            )
        if entry.id != expected:
            gap = f"{expected}" if entry.id == expected + 1 else f"{expected}–{entry.id - 1}"
            return ChainReport(checked, before, f"entry {gap} was deleted", expected)
        if not hmac.compare_digest(entry.entry_hash or "", link(key, previous, _entry_dict(entry))):
            return ChainReport(
                checked, before, f"entry {entry.id} was altered (or replaced)", entry.id
            )
        previous, expected, checked = entry.entry_hash, expected + 1, checked + 1
    if expected - 1 != head_id:
        gap = f"{expected}" if head_id == expected else f"{expected}–{head_id}"
        return ChainReport(checked, before, f"entry {gap} was deleted (end of the trail)", expected)
    return ChainReport(checked, before)


# --- events that change no row --------------------------------------------------------------


#: ``session.info`` flag of the web app's read-only request sessions (web/deps.py).
READ_ONLY = "read_only"


def log_event(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    table: str = "",
    row_id: str = "",
    details: dict[str, Any] | None = None,
    site_id: int | None = None,
    username: str | None = None,
    reason: str = "",
) -> None:
    """Append one event (log-in, export, identifier view) to the trail.

    It joins the session's transaction, except in a read-only request session (a GET, the
    log-in check), where it commits in its own short transaction, so the record stays even
    though the request's session is rolled back.
    """
    row = {
        "occurred_at": utcnow(),
        "user_id": actor.user_id if actor else None,
        "username": (username if username is not None else actor.username if actor else "")[:80],
        "action": action[:10],
        "table_name": table[:60],
        "row_id": row_id[:60],
        "old_values": None,
        "new_values": details,
        "reason": reason,
        "site_id": site_id,
    }
    if not session.info.get(READ_ONLY):
        append_entries(session, [row])
        return
    info = {k: v for k, v in session.info.items() if k != READ_ONLY}
    own = RegistrySession(bind=write_engine(session.get_bind()), info=info)
    try:
        append_entries(own, [row])
        own.commit()
    finally:
        own.close()


AUDIT_COLUMNS = [
    "id",
    "occurred_at",
    "user_id",
    "username",
    "action",
    "table_name",
    "row_id",
    "old_values",
    "new_values",
    "reason",
    "site_id",
]


def _scoped(query: Any, actor: Actor) -> Any:
    """Administrators read everything; monitors the entries of their own sites only."""
    actor.require(AUDIT_ROLES, "read the audit trail")
    if actor.role == Role.administrator:
        return query
    return query.where(AuditEntry.site_id.in_(sorted(actor.site_ids) or [-1]))


def list_audit(
    session: Session,
    actor: Actor,
    *,
    table: str | None = None,
    row_id: str | None = None,
    limit: int = 500,
) -> list[AuditEntry]:
    """Newest entries first, scoped by site (:func:`_scoped`)."""
    query = (
        _scoped(select(AuditEntry), actor)
        .order_by(AuditEntry.id.desc())
        .limit(max(1, min(limit, 10000)))
    )
    if table:
        query = query.where(AuditEntry.table_name == table)
    if row_id:
        query = query.where(AuditEntry.row_id == row_id)
    return list(session.scalars(query))


def audit_csv(session: Session, actor: Actor) -> str:
    """The trail the actor may read, as CSV (old/new values as JSON text), oldest first."""
    actor.require(AUDIT_ROLES, "export the audit trail")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_COLUMNS)
    for entry in session.scalars(_scoped(select(AuditEntry), actor).order_by(AuditEntry.id)):
        writer.writerow(
            safe_row(
                [
                    entry.id,
                    entry.occurred_at.isoformat() if entry.occurred_at else "",
                    entry.user_id,
                    entry.username,
                    entry.action,
                    entry.table_name,
                    entry.row_id,
                    json.dumps(entry.old_values, sort_keys=True)
                    if entry.old_values is not None
                    else "",
                    json.dumps(entry.new_values, sort_keys=True)
                    if entry.new_values is not None
                    else "",
                    entry.reason,
                    entry.site_id,
                ]
            )
        )
    return buffer.getvalue()
