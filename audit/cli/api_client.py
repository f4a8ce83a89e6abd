"""A small client of the biasaudit HTTP API (used by ``biasaudit submit``).

Every request has timeouts; ``503`` (the service's "try again shortly": database
down, too many submissions waiting) and connection failures are retried with the
server's ``Retry-After`` (capped) or a growing pause, a few times. Any other
``4xx``/``5xx`` raises :class:`ApiRequestError` carrying the server's JSON error
(``detail``, ``field``, ``errors``), so the command can print it as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

RETRIES = 5
MAX_RETRY_AFTER = 30.0
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
MSG_UNREACHABLE = "cannot reach the API at {url}: {error}"


class ApiRequestError(Exception):
    """A request the API refused (or that never reached it); ``str()`` is the message to show."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _retry_after(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return min(max(float(header), 0.1), MAX_RETRY_AFTER)
    except ValueError:
        return min(2.0**attempt, MAX_RETRY_AFTER)


def describe_error(method: str, path: str, response: httpx.Response) -> str:
    """``POST /v1/audits: 422 dataset.protected[1]: ...`` from the API's JSON error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if not isinstance(detail, str):
            detail = str(detail)
        lines = [f"{method} {path}: {response.status_code} {detail}"]
        errors = body.get("errors")
        if isinstance(errors, list) and len(errors) > 1:
            lines += [
                f"  {e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict)
            ]
        return "\n".join(lines)
    text = response.text.strip()[:500]
    return f"{method} {path}: {response.status_code} {text or response.reason_phrase}"


def _close_files(kwargs: dict[str, Any]) -> None:
    """Close the file objects of a multipart request (httpx leaves them open)."""
    for part in (kwargs.get("files") or {}).values():
        handle: Any = part[1] if isinstance(part, tuple) and len(part) > 1 else None
        if handle is not None and hasattr(handle, "close"):
            handle.close()


class ApiClient:
    """Requests to one API with one token; ``sleep`` is injectable for tests."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, build: Callable[[], dict[str, Any]] | None = None
    ) -> httpx.Response:
        """Send (``build()`` gives the request's keyword arguments, again for each retry)."""
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            kwargs = build() if build else {}
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    message = MSG_UNREACHABLE.format(url=self.base_url, error=exc)
                    raise ApiRequestError(message) from None
                self._sleep(min(2.0**attempt, MAX_RETRY_AFTER))
                continue
            finally:
                _close_files(kwargs)
            if response.status_code == 503 and not last:
                self._sleep(_retry_after(response, attempt))
                continue
            if response.status_code >= 400:
                raise ApiRequestError(
                    describe_error(method, path, response),
                    status=response.status_code,
                    body=response,
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()
