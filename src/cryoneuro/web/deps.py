"""Dependency injection: one session per request, the current user, CSRF checks."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile

from cryoneuro.registry.audit import READ_ONLY
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import AuthenticationError, PermissionDeniedError
from cryoneuro.registry.models import User
from cryoneuro.registry.services.plan_files import MAX_BUNDLE_BYTES
from cryoneuro.registry.sessions import check_session, open_session, revoke, touch
from cryoneuro.registry.settings import RegistrySettings


async def get_settings(request: Request) -> RegistrySettings:
    # async: no I/O, so no hop to the threadpool (each hop waits for the GIL under load)
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request; for writing methods its transaction is ``BEGIN IMMEDIATE``.

    The transaction (and so the SQLite write lock) starts at the route's first statement,
    in the route's own thread: a dependency that took the lock would hold it while the route
    waits for a threadpool thread, and with every thread waiting for the lock nothing could
    finish (the 100-writer test in test_registry_availability.py stalled exactly so).
    Routes commit explicitly after the service call; anything else is rolled back.

    Async: making the session object does no I/O (its connection is taken at the first
    statement, in the route's thread), so only the clean-up (rollback, connection back to the
    pool) goes to a worker thread — one threadpool hop per request fewer than a sync generator
    dependency (benchmarks/registry_load.py --mix pages).
    """
    state = request.app.state
    writing = request.method not in ("GET", "HEAD")
    session = state.session_factory(bind=state.write_engine) if writing else state.session_factory()
    if not writing:
        session.info[READ_ONLY] = True  # audit events from it commit on their own (audit.py)
    try:
        yield session
    finally:
        # shielded, with its own limiter (as FastAPI does for a sync dependency's exit): the
        # connection goes back even if the request was cancelled or the threadpool is full
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_end_session, session, limiter=anyio.CapacityLimiter(1))


def _end_session(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


def get_read_session(request: Request) -> Iterator[Session]:
    """A session that never takes the write lock (log-in: the password hash, deliberately
    slow, is computed outside any lock; the writes of a log-in go in their own short
    transaction)."""
    session = request.app.state.session_factory()
    session.info[READ_ONLY] = True
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, supplied: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not supplied or not hmac.compare_digest(expected, supplied):
        raise PermissionDeniedError("missing or wrong CSRF token: reload the page and retry")


def current_actor(request: Request) -> Actor:
    """The user of the request's live server-side session (registry/sessions.py), read in
    its own short read-only session (never the request's write transaction, see
    :func:`get_session`)."""
    token = request.session.get("sid")
    if not isinstance(token, str):
        raise AuthenticationError("log in first")
    state = request.app.state
    with state.session_factory() as session:
        try:
            user, due = check_session(session, state.settings, token)
        except AuthenticationError:
            request.session.clear()
            raise
        actor = Actor.from_user(user)
    if due:
        writer = sessionmaker_for_writes(request)
        with transaction(writer) as session:
            touch(session, token)
    return actor


def sessionmaker_for_writes(request: Request):
    """A session factory whose transactions are writing ones (short side transactions)."""
    state = request.app.state
    return sessionmaker(
        bind=state.write_engine,
        class_=state.session_factory.class_,
        expire_on_commit=False,
        info=dict(state.session_factory.kw["info"]),
    )


def start_session(request: Request, user: User, keep_csrf: bool) -> None:
    """Open a server-side session for ``user`` and put its token in the (signed) cookie; any
    earlier cookie content is dropped (no session fixation)."""
    with transaction(sessionmaker_for_writes(request)) as session:
        token = open_session(session, user, request.client.host if request.client else "")
    csrf = request.session.get("csrf") if keep_csrf else None
    request.session.clear()
    request.session["sid"] = token
    if csrf:
        request.session["csrf"] = csrf


def end_session(request: Request) -> None:
    """Revoke the request's server-side session and clear the cookie."""
    with transaction(sessionmaker_for_writes(request)) as session:
        revoke(session, request.session.get("sid"))
    request.session.clear()


async def api_actor(request: Request, actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    """The actor for JSON routes; state-changing methods need the X-CSRF-Token header."""
    if request.method not in ("GET", "HEAD"):
        check_csrf(request, request.headers.get("x-csrf-token"))
    return actor


async def posted(request: Request) -> dict[str, Any]:
    form = await request.form()
    check_csrf(request, form.get("csrf_token"))  # type: ignore[arg-type]
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def posted_fields(request: Request) -> dict[str, Any]:
    """The POSTed form's text fields after the CSRF check; ``{}`` for GET. A dependency, so
    routes can be plain ``def`` and run in the threadpool: their database work never blocks
    the event loop (the body is already in memory, middleware.py)."""
    return await posted(request) if request.method == "POST" else {}


FormDep = Annotated[dict[str, Any], Depends(posted_fields)]


async def posted_upload(request: Request) -> dict[str, Any]:
    """A plan-bundle upload form after the CSRF check: ``bundle`` (bytes) and ``reason``."""
    form = await request.form(max_files=2, max_fields=10)
    check_csrf(request, form.get("csrf_token"))  # type: ignore[arg-type]
    upload = form.get("bundle")
    reason = form.get("reason")
    return {
        "bundle": await upload.read(MAX_BUNDLE_BYTES + 1)
        if isinstance(upload, UploadFile)
        else b"",
        "reason": reason if isinstance(reason, str) else "",
    }


UploadFormDep = Annotated[dict[str, Any], Depends(posted_upload)]


#: Annotated dependencies (FastAPI template style) for the route signatures.
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SettingsDep = Annotated[RegistrySettings, Depends(get_settings)]
ApiActor = Annotated[Actor, Depends(api_actor)]
PageActor = Annotated[Actor, Depends(current_actor)]
