"""JSON request bodies, read the same way on every route.

One answer for each kind of bad body, whatever the route:

- a ``Content-Type`` that is not JSON: ``415``;
- more than :data:`MAX_JSON_BYTES`: ``413`` (refused from ``Content-Length``
  before reading, or as soon as the stream passes the limit);
- empty, not UTF-8, not JSON: ``422`` with ``field: "body"``;
- nested deeper than :data:`MAX_DEPTH` levels: ``422`` (never a RecursionError);
- a string holding NUL (``\\u0000``), which PostgreSQL cannot store: ``422``
  naming the field.

Every error is the API's JSON error object (``{"detail", "field"}``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from audit.api.errors import ApiError, validation_errors

MAX_JSON_BYTES = 1024 * 1024
MAX_DEPTH = 64
MSG_MEDIA_TYPE = "body: send application/json, not {ctype!r}"
MSG_TOO_LARGE = f"body: larger than {MAX_JSON_BYTES} bytes"
MSG_EMPTY = "body: required: a JSON object"
MSG_NOT_JSON = "body: not valid JSON: {error}"
MSG_TOO_DEEP = f"{{field}}: nested deeper than {MAX_DEPTH} levels"
MSG_NUL = "{field}: contains a NUL character (\\u0000), which cannot be stored"
MSG_NOT_FINITE = "body: {value} is not a finite number; JSON numbers must be finite"

M = TypeVar("M", bound=BaseModel)


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, lower case (JSON when absent)."""
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


async def read_json_bytes(request: Request, *, also: frozenset[str] = frozenset()) -> bytes:
    """The request body (at most 1 MiB) of a JSON request (or one of the media types
    ``also`` names), unparsed: 413 or 415 otherwise."""
    ctype = media_type(request)
    if ctype != "application/json" and not ctype.endswith("+json") and ctype not in also:
        message = MSG_MEDIA_TYPE.format(ctype=ctype)
        if also:
            message = message.replace("application/json", "application/json or application/yaml")
        raise ApiError(415, message, field="body")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise ApiError(413, MSG_TOO_LARGE, field="body")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise ApiError(413, MSG_TOO_LARGE, field="body")
    return bytes(raw)


def _where(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def check_tree(value: Any, *, prefix: str = "") -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and strings holding NUL (422 naming where).

    Iterative, in document order: a hostile document cannot exhaust the stack.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, prefix.rstrip("."))]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ApiError(422, MSG_NUL.format(field=path or "body"), field=path or "body")
            continue
        if isinstance(item, dict):
            children = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ApiError(422, MSG_TOO_DEEP.format(field=path or "body"), field=path or "body")
        for key, child in reversed(children):
            where = _where(path, key)
            if isinstance(key, str) and "\x00" in key:
                raise ApiError(422, MSG_NUL.format(field=where), field=where)
            stack.append((child, depth + 1, where))


class _NotFinite(ValueError):
    pass


def _not_finite(literal: str) -> float:
    raise _NotFinite(literal)  # NaN, Infinity, -Infinity: Python extensions, not JSON


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _NotFinite(literal)  # 1e400
    return value


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed as JSON: 422 naming ``body`` when it is empty, not JSON or too deep.

    Nesting and NUL characters are checked by :func:`check_tree` afterwards.
    """
    if not raw.strip():
        raise ApiError(422, MSG_EMPTY, field="body")
    try:
        return json.loads(raw, parse_constant=_not_finite, parse_float=_finite_float)
    except _NotFinite as exc:
        raise ApiError(422, MSG_NOT_FINITE.format(value=exc.args[0]), field="body") from None
    except RecursionError:
        raise ApiError(422, MSG_TOO_DEEP.format(field="body"), field="body") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(422, MSG_NOT_JSON.format(error=exc), field="body") from None


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body validated as ``model``; the API's errors otherwise."""
    raw = parse_json(await read_json_bytes(request))
    check_tree(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_errors(exc.errors()) from None
