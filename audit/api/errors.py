"""One error shape for every failure: ``{"detail": str, "field": str | None}``.

``field`` names the request part at fault (``dataset.protected``, ``file``,
``limit``, ``Authorization``) so a client can point at it; spec errors add
``errors``, the full list of ``{"field", "message"}``.

One rule for the database: :func:`database_unavailable` errors (no
connection, pool exhausted, deadlock, lock or statement timeout) answer
``503`` with ``Retry-After`` (the request changed nothing; try again);
:func:`unreachable` is the subset meaning the server itself is down or
refusing connections, on which the group commit answers a whole batch at once.
Anything else is a ``500``, answered as JSON by the request middleware.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("audit.api")

MSG_DB_UNAVAILABLE = "database unavailable: nothing was changed; try again later"
MSG_INTERNAL = "internal error: nothing was changed; the request id is in X-Request-ID"
RETRY_AFTER = {"Retry-After": "5"}
# SQLSTATEs meaning "the database cannot be reached or refuses connections".
_UNREACHABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot serve this now; retry": answer 503."""
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout))


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the database server is down or refuses connections.

    Deadlocks, serialization failures, lock and statement timeouts are errors of
    one transaction, not of the server (the group commit splits such a batch).
    """
    if isinstance(exc, (InterfaceError, PoolTimeout)):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith("08") or state in _UNREACHABLE_STATES


def unavailable_error() -> ApiError:
    """The 503 answered when :func:`database_unavailable`."""
    return ApiError(503, MSG_DB_UNAVAILABLE, headers=RETRY_AFTER)


class ApiError(Exception):
    """An HTTP error with the JSON body ``{"detail", "field"}`` (plus ``extra`` keys)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field
        self.headers = headers
        self.extra = extra or {}


def not_found(what: str, ident: str, *, field: str | None = None) -> ApiError:
    """404 for a missing object — also for another project's (no existence leak)."""
    return ApiError(404, f"{what} {ident!r} not found", field=field)


def error_body(detail: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "field": field, **extra}


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.detail, exc.field, **exc.extra),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body(str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def validation_errors(raw: Any) -> ApiError:
    """422 for pydantic / FastAPI validation errors: ``field`` is the first path, ``errors`` all."""
    errors = [
        {"field": _loc(e.get("loc", ())), "message": str(e.get("msg", "invalid"))} for e in raw
    ]
    first = errors[0] if errors else {"field": None, "message": "invalid request"}
    detail = "; ".join(
        f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors
    )
    return ApiError(422, detail, field=first["field"], extra={"errors": errors})


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return await _api_error(request, validation_errors(exc.errors()))


async def _db_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return await _api_error(request, unavailable_error())


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the ``{"detail", "field"}`` shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_type in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(exc_type, _db_unavailable)
