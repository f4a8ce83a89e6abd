"""uvicorn's httptools protocol with limits on request headers and timeouts on slow clients.

uvicorn (with httptools) accepts any number of headers of any size, and a
client that sends its request a byte at a time holds a connection forever.
:class:`GuardedHttpToolsProtocol` (``biasaudit serve`` uses it) adds, per
request:

- at most ``BIASAUDIT_MAX_REQUEST_HEADER_BYTES`` bytes of request line and
  headers, and at most ``BIASAUDIT_MAX_REQUEST_HEADERS`` headers: ``431``
  beyond, and the connection is closed;
- the request line and headers must arrive within
  ``BIASAUDIT_REQUEST_HEADER_TIMEOUT`` seconds of the first byte (or of the
  connection): ``408`` and close otherwise;
- a body may pause at most ``BIASAUDIT_REQUEST_BODY_TIMEOUT`` seconds between
  two chunks; a slower client is disconnected (the route sees the client gone
  and cleans up, e.g. an upload's temporary file).
"""

from __future__ import annotations

import json
import logging
from asyncio import TimerHandle
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from audit.settings import get_settings

log = logging.getLogger("audit.api.access")

MSG_HEADERS_TOO_LARGE = (
    "request headers: more than {limit} bytes; the limit is BIASAUDIT_MAX_REQUEST_HEADER_BYTES"
)
MSG_TOO_MANY_HEADERS = (
    "request headers: more than {limit} headers; the limit is BIASAUDIT_MAX_REQUEST_HEADERS"
)
MSG_HEADER_TIMEOUT = (
    "request headers: not received within {seconds:g} s; the limit is "
    "BIASAUDIT_REQUEST_HEADER_TIMEOUT"
)
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with header caps and slow-client timeouts (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_request_header_bytes
        self.max_headers = settings.max_request_headers
        self.header_timeout = settings.request_header_timeout
        self.body_timeout = settings.request_body_timeout
        self._header_bytes = 0
        self._header_count = 0
        self._raw_bytes = 0  # bytes received while the headers are incomplete
        self._headers_done = False
        self._refused = False
        self._timer: TimerHandle | None = None
        self._in_body = False

    # ---------------------------------------------------------------- timers

    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        self._refuse(408, MSG_HEADER_TIMEOUT.format(seconds=self.header_timeout))

    def _body_stalled(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            log.warning(
                "request body stalled for %g s (BIASAUDIT_REQUEST_BODY_TIMEOUT): closing",
                self.body_timeout,
            )
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with the API's JSON error body and close the connection."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        log.warning("refused a request: %s", message, extra={"status": status})
        body = json.dumps({"detail": message, "field": "headers"}).encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body))
        )
        self.transport.write(head + body)
        self.transport.close()

    # ---------------------------------------------------------------- protocol events

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._timer is None and idle and not self._in_body:
            self._arm(self.header_timeout, self._headers_late)  # the next request has begun
        super().data_received(data)
        if not self._headers_done and not self._refused:
            # httptools buffers a header until it is complete: bound that buffer too
            self._raw_bytes += len(data)
            if self._raw_bytes > self.max_header_bytes:
                self._refuse(431, MSG_HEADERS_TOO_LARGE.format(limit=self.max_header_bytes))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0
        self._raw_bytes = 0
        self._headers_done = False
        if self._timer is None:
            self._arm(self.header_timeout, self._headers_late)

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._header_bytes += len(url)
        if self._header_bytes > self.max_header_bytes:
            self._refuse(431, MSG_HEADERS_TOO_LARGE.format(limit=self.max_header_bytes))
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_bytes += len(name) + len(value) + 4
        self._header_count += 1
        if self._header_bytes > self.max_header_bytes:
            self._refuse(431, MSG_HEADERS_TOO_LARGE.format(limit=self.max_header_bytes))
        elif self._header_count > self.max_headers:
            self._refuse(431, MSG_TOO_MANY_HEADERS.format(limit=self.max_headers))
        else:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_body = self._headers_done = True
        self._arm(self.body_timeout, self._body_stalled)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._arm(self.body_timeout, self._body_stalled)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_body = False
        self._disarm()
        super().on_message_complete()
