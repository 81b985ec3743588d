"""Engines and writing transactions.

SQLite runs with WAL and foreign keys on; every writing transaction (:func:`transaction`)
starts with ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two writers never
fail on a lock upgrade and the randomisation list is consumed strictly one allocation at a
time. Read-only sessions use a plain deferred ``BEGIN`` and never block writers (WAL).
PostgreSQL uses row locks (``SELECT … FOR UPDATE``) instead.

Waiting is bounded (issue 13): a writer waits at most :data:`SQLITE_BUSY_S` for the SQLite
lock (SQLite's busy handler retries with back-off for that long) and at most
:data:`POOL_TIMEOUT_S` for a pooled connection; past that the request fails with
:class:`ServiceBusyError`, which the web app answers with 503 and ``Retry-After`` instead of
a 500. Request bodies are read before any session is opened (web/middleware.py), so a lock
is only ever held while the server works, never while a client is sending.

This module is the bottom of the registry: it imports neither the audit trail nor the keys.
Audited sessions are made by :func:`cryoneuro.registry.audit.make_sessionmaker`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.registry.errors import RegistryError

#: Execution option asking SQLite for BEGIN IMMEDIATE (ignored by PostgreSQL).
IMMEDIATE = "cryoneuro_immediate"
#: Longest wait for the SQLite write lock, and for a connection from the pool.
SQLITE_BUSY_S = 30
POOL_TIMEOUT_S = 30


class ServiceBusyError(RegistryError):
    """The database stayed busy longer than the bounded wait: HTTP 503, Retry-After."""

    status_code = 503
    retry_after = 2


def is_busy(exc: BaseException) -> bool:
    """Whether a database error means "too busy now, retry" (lock or pool timeout)."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return (
            "database is locked" in text
            or "database is busy" in text
            or "lock timeout" in text
            or "too many clients" in text
        )
    return False


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas/locking the registry relies on."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", SQLITE_BUSY_S)
        if not url.endswith(":memory:") and url not in ("sqlite://", "sqlite:///"):
            # enough connections for the threadpool (40) that serves sync routes
            kwargs.setdefault("pool_size", 20)
            kwargs.setdefault("max_overflow", 30)
            kwargs.setdefault("pool_timeout", POOL_TIMEOUT_S)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT_S)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take control of transactions from pysqlite so that BEGIN IMMEDIATE is possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_S * 1000}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    # Writers of this process queue on a lock before BEGIN IMMEDIATE: SQLite's own busy
    # handler polls with sleeps of up to 100 ms, so under 100 concurrent writers most of the
    # wait was sleeping and most requests ran out of time (62 of 100 got 503 in
    # test_registry_availability.py); a lock hands over as soon as the writer commits.
    # (Written by hand: no library offers this for pysqlite; SQLite itself stays the guard.)
    writer = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        if immediate:
            if not writer.acquire(timeout=SQLITE_BUSY_S):
                raise ServiceBusyError("the registry is busy: retry in a few seconds")
            connection.info["holds_writer"] = True
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(connection)
                raise
        else:
            connection.exec_driver_sql("BEGIN")

    def _release(connection: Any) -> None:
        if connection.info.pop("holds_writer", False):
            writer.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)


def write_engine(engine: Engine) -> Engine:
    """The engine whose transactions are writing ones (BEGIN IMMEDIATE on SQLite), started
    lazily at the first statement; same pool and events as ``engine``."""
    return engine.execution_options(**{IMMEDIATE: True})


def begin_write(session: Session) -> None:
    """Make the session's transaction a writing one (BEGIN IMMEDIATE on SQLite).

    Must be called before the first statement of the transaction.
    """
    session.connection(execution_options={IMMEDIATE: True})


@contextmanager
def transaction(factory: sessionmaker[Session], write: bool = True) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any exception."""
    session = factory()
    try:
        if write:
            begin_write(session)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
