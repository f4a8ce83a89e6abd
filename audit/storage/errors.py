"""Storage errors a worker must tell apart, and the limit on a stored result's size.

- :func:`is_transient_db_error`: the database is unreachable or restarting, a
  deadlock, SQLite busy: retry within the attempt (the lease is still valid).
- :func:`unstorable_reason`: the database refused a value for its content
  (SQLSTATE class 22 "data exception", 54 "program limit exceeded": a jsonb
  document over 256 MiB, a NUL character): an input error, never retried.
- :func:`check_result_size`: ``BIASAUDIT_MAX_RESULT_BYTES``, checked before
  anything is rendered or written, so a huge document fails once, by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exc as sa_exc

from audit.errors import AuditInputError

# Asserted on by tests.
MSG_RESULT_TOO_LARGE = (
    "results: the audit's results are {size:,} bytes of JSON, over the limit of {limit:,} "
    "bytes (BIASAUDIT_MAX_RESULT_BYTES); audit fewer probes, attributes or intersections, "
    "or raise the limit"
)
MSG_RESULT_UNSTORABLE = (
    "results: the database refused to store the audit's results ({reason}); "
    "this is caused by the results themselves and is not retried"
)
# SQLSTATE classes of errors that pass: connection lost or refused (08), the server
# shutting down or starting (57), out of resources (53), a deadlock or serialization
# failure (40), lock not available (55P03), an I/O error on the server (58).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53", "40", "58")
_TRANSIENT_SQLSTATES = ("55P03",)


class ResultTooLarge(AuditInputError):
    """The results document is over ``BIASAUDIT_MAX_RESULT_BYTES``: an input error."""


class ResultUnstorable(AuditInputError):
    """The database refused the results for what they contain (size, characters)."""


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def is_transient_db_error(exc: BaseException) -> bool:
    """True for database errors that pass by themselves: worth retrying in the attempt.

    Connection errors (refused, reset, a server restarting), deadlocks,
    serialization failures and SQLite's "database is locked". Errors caused by
    the data (too large, invalid characters, constraints) are not.
    """
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = _sqlstate(exc)
    if code is not None:
        return code[:2] in _TRANSIENT_SQLSTATE_CLASSES or code in _TRANSIENT_SQLSTATES
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True  # no SQLSTATE: the server was never reached, or SQLite is busy
    return False


def unstorable_reason(exc: BaseException) -> str | None:
    """Why the database refused a value for its content, or None for any other error.

    PostgreSQL: SQLSTATE class 22 (data exception) or 54 (program limit exceeded);
    SQLite: a ``DataError`` ("string or blob too big").
    """
    code = _sqlstate(exc)
    if code is not None and code[:2] not in ("22", "54"):
        return None
    if code is None and not isinstance(exc, sa_exc.DataError):  # SQLite: "too big"
        return None
    orig = getattr(exc, "orig", exc)
    text = str(orig).strip()
    first_line = text.splitlines()[0] if text else type(orig).__name__
    return f"{code}: {first_line}"[:300] if code else first_line[:300]


def result_size(results: Mapping[str, Any]) -> int:
    """Bytes of the results document as compact JSON (what the size limit counts)."""
    return len(json.dumps(results, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def check_result_size(results: Mapping[str, Any], *, limit: int | None = None) -> int:
    """The document's size; ``ResultTooLarge`` (an input error) when over ``limit``.

    ``limit`` defaults to ``Settings.max_result_bytes`` (``BIASAUDIT_MAX_RESULT_BYTES``).
    """
    if limit is None:
        from audit.settings import get_settings

        limit = get_settings().max_result_bytes
    size = result_size(results)
    if size > limit:
        raise ResultTooLarge(MSG_RESULT_TOO_LARGE.format(size=size, limit=limit), field="results")
    return size
