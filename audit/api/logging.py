"""JSON logs, one object per line, carrying the request id and the audit id.

The request middleware opens a log context (:func:`new_context`) holding the
request id; routes add the audit id and project with :func:`bind`. The
context is one mutable dict per request, so what a route binds (even from a
worker thread) is seen by every later log line of that request, including
the access log. Headers are never logged;
as a second line of defence :class:`JsonFormatter` masks anything that looks
like a bearer token (``Bearer …``, ``ba_…``) in messages and fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

_context: ContextVar[dict[str, Any] | None] = ContextVar("biasaudit_log_context", default=None)
CONTEXT_KEYS = ("request_id", "audit_id", "project", "token_id")

_SECRET = re.compile(r"(?i)(bearer\s+)\S+|\bba_[A-Za-z0-9_\-]{8,}")
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def new_context(**values: Any) -> Token[dict[str, Any] | None]:
    """Start a fresh log context (one per request); reset it with ``end_context(token)``."""
    return _context.set(dict(values))


def end_context(token: Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def bind(**values: Any) -> None:
    """Add ``audit_id`` / ``project`` / ... to the current log context."""
    current = _context.get()
    if current is None:
        _context.set(dict(values))
    else:
        current.update(values)


def context() -> dict[str, Any]:
    """A copy of the current log context."""
    return dict(_context.get() or {})


def redact(text: str) -> str:
    """``text`` with bearer tokens replaced by ``[redacted]``."""
    return _SECRET.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """``{"time","level","logger","message","request_id","audit_id","project",...}``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        ctx = _context.get() or {}
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None) or ctx.get(key)
            if value is not None:
                doc[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = _clean(value)
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


def configure_logging(level: str | int = "INFO", *, stream: Any = None) -> None:
    """Send every logger (uvicorn's too) through one JSON handler on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
