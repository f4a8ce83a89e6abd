"""JSON log lines for workers, each carrying the audit id (and Celery task) it concerns.

``audit_context(audit_id)`` sets the id for everything logged inside it, in
this thread and in threads it copies the context to (the lease heartbeat).
Specs and tokens are never logged; as a second line of defence anything
shaped like an API token (``ba_`` + 20 or more URL-safe characters) is masked,
and very long messages (a shard's counts in Celery's "succeeded" line) are
shortened.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_AUDIT_ID: ContextVar[str | None] = ContextVar("biasaudit_audit_id", default=None)
TOKEN_PATTERN = re.compile(r"ba_[A-Za-z0-9_-]{20,}")
MAX_MESSAGE_CHARS = 2000


@contextmanager
def audit_context(audit_id: str) -> Iterator[None]:
    """Tag every log record emitted inside the block with ``audit_id``."""
    token = _AUDIT_ID.set(audit_id)
    try:
        yield
    finally:
        _AUDIT_ID.reset(token)


class AuditContextFilter(logging.Filter):
    """Adds ``audit_id``, ``task_id`` and ``task_name`` to records (None outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "audit_id"):
            record.audit_id = _AUDIT_ID.get()
        task_id = task_name = None
        try:
            from celery import current_task

            if current_task and current_task.request.id:
                task_id, task_name = current_task.request.id, current_task.name
        except Exception:  # noqa: BLE001 - logging must never fail
            pass
        record.task_id = getattr(record, "task_id", None) or task_id
        record.task_name = getattr(record, "task_name", None) or task_name
        return True


def redact(text: str) -> str:
    """Mask token-shaped strings and shorten very long messages."""
    text = TOKEN_PATTERN.sub("ba_***", text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... ({len(text) - MAX_MESSAGE_CHARS} chars cut)"
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, audit_id, task, process."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "audit_id": getattr(record, "audit_id", None),
            "task_id": getattr(record, "task_id", None),
            "task": getattr(record, "task_name", None),
            "process": record.process,
        }
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


def configure_json_logging(level: str | int = "INFO") -> None:
    """Send every log record (Celery's included) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(AuditContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
