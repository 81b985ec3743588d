"""Application factory: settings, database, middleware and error translation.

Errors a user can cause become 4xx with a message naming the field; nothing they can send
should produce a 500 (see tests/registry/test_registry_api.py).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from cryoneuro.registry.audit import make_sessionmaker
from cryoneuro.registry.auth import LoginRateLimitedError, LoginRateLimiter
from cryoneuro.registry.database_keys import check_startup, ensure_keys
from cryoneuro.registry.db import (
    ServiceBusyError,
    is_busy,
    make_engine,
    write_engine,
)
from cryoneuro.registry.errors import AuthenticationError, RegistryError, RegistryInputError
from cryoneuro.registry.settings import RegistrySettings, get_settings
from cryoneuro.web import (
    account_pages,
    admin_api,
    admin_pages,
    api,
    edit_pages,
    epro_pages,
    job_pages,
    pages,
    preview_api,
    procedure_pages,
    query_pages,
    workspace_pages,
)
from cryoneuro.web.deps import PageActor
from cryoneuro.web.middleware import LimitsAndHeaders
from cryoneuro.web.pages import error_page

HERE = Path(__file__).parent
MAX_BODY_BYTES = 4_000_000
#: Plan-bundle uploads (50 MB zip, services/plan_files.py) plus multipart overhead.
MAX_UPLOAD_BODY_BYTES = 51 * 1024 * 1024


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api")


class RedactTokens(logging.Filter):
    """Keep password-reset and ePRO tokens out of the access log (request lines carry the path)."""

    PATTERN = re.compile(r"(/reset-password/|/epro/)(?!completion\b|links/|alerts/)[^\s?\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1[redacted]", record.msg)
        return True


def signed_session_checker(settings: RegistrySettings):
    """Whether a session cookie is validly signed, unexpired and names a user: the cheap
    check the body middleware makes before reading a large body (the database check of the
    session follows in the route)."""
    signer = TimestampSigner(settings.secret_key)

    def check(cookie: str) -> bool:
        try:
            data = json.loads(
                base64.b64decode(signer.unsign(cookie.encode(), max_age=settings.session_max_age_s))
            )
        except (BadSignature, ValueError, TypeError):
            return False
        return isinstance(data, dict) and isinstance(data.get("sid"), str)

    return check


def create_app(settings: RegistrySettings | None = None, dev: bool = False) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment).

    Refuses (:class:`~cryoneuro.registry.keys.KeyFileError`) without the registry keys or
    with keys that are not the database's; ``dev`` uses ephemeral keys instead.
    """
    settings = ensure_keys(settings or get_settings(), dev=dev)
    # /docs and /openapi.json only after log-in (routes below), not FastAPI's public ones
    app = FastAPI(
        title="cryoneuro registry",
        description="Research registry for cryoablation of peripheral neuromas "
        "(NICE HTG652: research only).",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access_log.filters):
        access_log.addFilter(RedactTokens())
    engine = make_engine(settings.db_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_sessionmaker(engine, settings.keys)
    app.state.write_engine = write_engine(engine)
    try:
        check_startup(settings, app.state.session_factory, dev=dev)
    except BaseException:
        engine.dispose()
        raise
    app.state.login_limiter = LoginRateLimiter()
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="cryoneuro_session",
        max_age=settings.session_max_age_s,
        same_site="strict",
        https_only=settings.secure_cookies,
    )

    app.add_middleware(
        LimitsAndHeaders,
        limit_bytes=MAX_BODY_BYTES,
        upload_limit_bytes=MAX_UPLOAD_BODY_BYTES,
        deadline_s=settings.body_deadline_s,
        is_authenticated=signed_session_checker(settings),
        upload_suffix=("/plan-bundle", "/images"),  # plan bundles; case images (workspace)
    )

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> Response:
        if isinstance(exc, AuthenticationError) and _wants_html(request):
            return RedirectResponse("/login", status_code=303)
        field = exc.field if isinstance(exc, RegistryInputError) else None
        headers = (
            {"Retry-After": str(exc.retry_after)}
            if isinstance(exc, LoginRateLimitedError | ServiceBusyError)
            else {}
        )
        if _wants_html(request):
            response = error_page(request, exc.status_code, str(exc), field)
            response.headers.update(headers)
            return response
        return JSONResponse(
            {"detail": str(exc), "field": field}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg"))[:300]}
            for e in exc.errors()[:20]
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        if _wants_html(request):
            return error_page(request, 422, first["message"], first["field"])
        return JSONResponse(
            {
                "detail": f"{first['field']}: {first['message']}",
                "field": first["field"],
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def busy_error(request: Request, exc: Exception) -> Response:
        """Lock or pool wait exceeded (db.py): 503 with Retry-After, never a 500."""
        if not is_busy(exc):
            raise exc
        return JSONResponse(
            {"detail": "the registry is busy: retry in a few seconds", "field": None},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"detail": str(exc.detail), "field": None}, status_code=exc.status_code)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema(actor: PageActor) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def api_docs(actor: PageActor) -> Response:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="cryoneuro registry API")
        # Swagger UI's script and style come from its CDN: allowed on this page only
        page.headers["content-security-policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
            "https://fastapi.tiangolo.com; frame-ancestors 'none'"
        )
        return page

    app.include_router(api.router)
    app.include_router(admin_api.router)
    app.include_router(pages.router)
    app.include_router(procedure_pages.router)
    app.include_router(job_pages.router)
    app.include_router(preview_api.router)
    app.include_router(workspace_pages.router)
    app.include_router(edit_pages.router)
    app.include_router(epro_pages.router)
    app.include_router(account_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(query_pages.api)
    app.include_router(query_pages.pages)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
