"""Engine and session factory.

SQLite runs with WAL and foreign keys on; every writing transaction (:func:`transaction`)
starts with ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two writers never
fail on a lock upgrade and the randomisation list is consumed strictly one allocation at a
time. Read-only sessions use a plain deferred ``BEGIN`` and never block writers (WAL).
PostgreSQL uses row locks (``SELECT … FOR UPDATE``) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from cryoneuro.registry.keys import RegistryKeys

#: Execution option asking SQLite for BEGIN IMMEDIATE (ignored by PostgreSQL).
IMMEDIATE = "cryoneuro_immediate"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas/locking the registry relies on."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", 30)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take control of transactions from pysqlite so that BEGIN IMMEDIATE is possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_sessionmaker(engine: Engine, keys: RegistryKeys | None = None) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (pages render after the commit).

    ``keys`` gives the audit key that chains audit entries (audit.py); a session without it
    can read but cannot write audited changes.
    """
    from cryoneuro.registry.audit import RegistrySession

    info = {"audit_key": keys.audit_key} if keys is not None else {}
    return sessionmaker(bind=engine, class_=RegistrySession, expire_on_commit=False, info=info)


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
