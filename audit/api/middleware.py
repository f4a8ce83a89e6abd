"""The request middleware: request id, logs, metrics, security headers, and JSON 500s.

:class:`RequestContextMiddleware` wraps every HTTP request:

- a request id (the client's ``X-Request-ID``, at most 64 printable ASCII
  characters, else a new one) in the log context and in the response;
- one access log line (method, path, status, duration, request id, project,
  audit id; never headers) and the HTTP metrics;
- ``Content-Security-Policy``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy`` and ``X-Frame-Options`` on every response (a route that
  sets its own policy keeps it): a report rendered from user-supplied names
  cannot run script, be framed, or be sniffed into another type;
- an exception no handler answered becomes a JSON ``500``
  (``{"detail", "field"}``) with the request id, and one error log line that
  carries the ``request_id`` and the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.api.errors import MSG_INTERNAL
from audit.api.logging import context, end_context, new_context
from audit.api.metrics import Metrics

log = logging.getLogger("audit.api.access")
errors_log = logging.getLogger("audit.api")

# No script, no framing, no plugins; inline styles and data: images (the HTML report).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The interactive API docs load Swagger UI / ReDoc from their CDN.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src data: https:; worker-src blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The dashboard (/ui/): its own stylesheet and script files only, forms post to itself.
UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,64}$")


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is short printable ASCII, else a new one."""
    for name, value in scope.get("headers") or []:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def _headers(message: Message, *, request_id: str, csp: str) -> list[tuple[bytes, bytes]]:
    headers = list(message.get("headers") or [])
    present = {name.lower() for name, _ in headers}
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", csp.encode("latin-1")))
    headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
    return headers


def _csp_for(path: str) -> str:
    if path in DOCS_PATHS:
        return DOCS_CSP
    if path == "/ui" or path.startswith("/ui/"):
        return UI_CSP
    return CSP


class RequestContextMiddleware:
    """Pure ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = new_context(request_id=request_id)
        start = time.perf_counter()
        status = 500
        started = False
        csp = _csp_for(scope.get("path") or "")

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = _headers(message, request_id=request_id, csp=csp)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            log.info("client disconnected before the answer")
        except Exception:
            errors_log.exception("unhandled error; answering 500", extra={"request_id": request_id})
            if not started:
                await self._internal_error(send_wrapper)
        finally:
            self._record(scope, status, time.perf_counter() - start)
            end_context(token)

    @staticmethod
    async def _internal_error(send: Send) -> None:
        body = json.dumps({"detail": MSG_INTERNAL, "field": None}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope.get("method", "")
        self.metrics.observe(method=method, route=route, status=status, seconds=elapsed)
        if route not in ("/healthz", "/metrics"):
            log.info(
                "%s %s %d",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "status": status,
                    "route": route,
                    "duration_ms": round(elapsed * 1000, 2),
                    **context(),
                },
            )
