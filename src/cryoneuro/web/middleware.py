"""Request bodies read whole, under a deadline and a size cap, before any route runs; security
headers on every response. A plain ASGI middleware (not BaseHTTPMiddleware, whose extra task
and memory streams cost a measurable share of CPU on the hot path, benchmarks/registry_load.py).

Why the body is read here (issue 13): a route that takes a database session and then awaits
its body lets one client that sends ``Content-Length: 200`` and nothing else hold the SQLite
write lock (or a PostgreSQL pool connection) until the server gives up. Here the whole body
is in memory before the app sees the request, so no session or lock can wait on a client:

- a declared ``Content-Length`` over the cap is refused (413) before reading; a chunked body
  is counted as it arrives and refused as soon as it passes the cap;
- the cap depends on authentication, checked before reading: without a validly signed
  session cookie the cap is :data:`ANONYMOUS_LIMIT` (a log-in form is a few hundred bytes)
  and upload paths answer 401 at once; with one, 4 MB (51 MB for plan-bundle uploads and for
  a procedure's image and segmentation, ``upload_suffix``). The
  cookie's session is checked against the database later, by the route;
- the body must arrive within ``deadline_s`` seconds in all, else 408.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Every page: no framing, no sniffing, no caching of patient data, no referrer leaking URLs
#: (reset tokens), and a CSP allowing only the app's own scripts, styles and images. Niivue
#: (static/) needs WebGL only; 'unsafe-inline' styles because templates use style attributes.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        (
            b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; "
            b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        ),
    ),
)
#: Body cap without a signed session cookie (log-in, password reset).
ANONYMOUS_LIMIT = 64 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _reply(
    send: Send,
    status: int,
    detail: str,
    field: str = "body",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    body = json.dumps({"detail": detail, "field": field}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *extra,
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class LimitsAndHeaders:
    """Buffer each request body under a deadline and an authentication-dependent size cap;
    add the security headers to every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_bytes: int,
        upload_limit_bytes: int,
        deadline_s: float = 15.0,
        is_authenticated: Callable[[str], bool] | None = None,
        cookie_name: str = "cryoneuro_session",
        upload_suffix: str | tuple[str, ...] = "/plan-bundle",
    ) -> None:
        self.app = app
        self.limit = limit_bytes
        self.upload_limit = upload_limit_bytes
        self.deadline_s = deadline_s
        self.is_authenticated = is_authenticated or (lambda _cookie: False)
        self.cookie_name = cookie_name
        self.upload_suffix = upload_suffix

    def _signed_in(self, scope: Scope) -> bool:
        for key, value in scope.get("headers", ()):
            if key == b"cookie":
                try:
                    morsel = SimpleCookie(value.decode("latin-1")).get(self.cookie_name)
                except Exception:
                    continue
                if morsel is not None and self.is_authenticated(morsel.value):
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        if scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        upload = scope.get("path", "").endswith(self.upload_suffix)
        signed_in = self._signed_in(scope)
        if upload and not signed_in:
            await _reply(send, 401, "log in first", "bundle")
            return
        limit = (self.upload_limit if upload else self.limit) if signed_in else ANONYMOUS_LIMIT
        field = "bundle" if upload else "body"
        too_large = f"request body too large (limit {limit / 10**6:g} MB)"
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _reply(send, 413, too_large, field)
            return

        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.deadline_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await _reply(send, 413, too_large, field)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _reply(send, 408, f"request body not received within {self.deadline_s:g} s")
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette does

        await self.app(scope, replay, send_with_headers)
