"""Request-size limits and security headers as a plain ASGI middleware.

Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) runs every request through an
extra task and memory streams; on the registry's hottest path (a follow-up entry, a few
milliseconds of work) that wrapper was a measurable share of the CPU under load
(benchmarks/registry_load.py). This class does the same two jobs at the ASGI level: refuse a
body whose declared length is over the limit (413, JSON, before reading it) and add the
headers every response needs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"))


class LimitsAndHeaders:
    """413 for an oversized declared body; security headers on every response."""

    def __init__(self, app: ASGIApp, *, limit_bytes: int, upload_limit_bytes: int,
                 upload_suffix: str = "/plan-bundle") -> None:
        self.app = app
        self.limit = limit_bytes
        self.upload_limit = upload_limit_bytes
        self.upload_suffix = upload_suffix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope.get("path", "").endswith(self.upload_suffix)
        limit = self.upload_limit if upload else self.limit
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > limit):
            body = json.dumps({"detail": f"request body too large (limit {limit // 10**6} MB)",
                               "field": "bundle" if upload else "body"}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
