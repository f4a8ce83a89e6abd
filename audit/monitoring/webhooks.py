"""Webhook targets: the allowlist and SSRF checks, signing, and one delivery attempt.

A webhook URL is accepted only if its host matches ``BIASAUDIT_WEBHOOK_ALLOWLIST``
(an exact host, or ``*.suffix`` for any sub-domain of suffix) and every address
it resolves to is public. A private, loopback, link-local or reserved address
is accepted only when the host is listed *exactly* (not through a wildcard).
The check runs when the schedule is saved and again before each delivery, and
the delivery connects to the address that was checked (no second lookup, no
redirects), so a DNS answer that changes in between cannot redirect it.

The body is signed with ``X-Biasaudit-Signature: sha256=<hex HMAC-SHA256 of
the body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Biasaudit-Signature"


class WebhookRefused(ValueError):
    """The webhook URL is not allowed (message names ``alert.webhook``)."""


def _allowlist(value: str) -> list[str]:
    return [h.strip().lower().rstrip(".") for h in value.split(",") if h.strip()]


def host_listed(host: str, allowlist: str) -> str | None:
    """``"exact"``, ``"wildcard"`` or None: how ``host`` matches the allowlist."""
    host = host.lower().rstrip(".")
    entries = _allowlist(allowlist)
    if host in entries:
        return "exact"
    for entry in entries:
        if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
            return "wildcard"
    return None


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def check_webhook(url: str, allowlist: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) of an allowed URL, else WebhookRefused."""
    if not isinstance(url, str) or len(url) > 2000:
        raise WebhookRefused("alert.webhook: must be an http(s) URL of at most 2000 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"alert.webhook: {url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise WebhookRefused("alert.webhook: credentials in the URL are not allowed")
    host = parts.hostname
    how = host_listed(host, allowlist)
    if how is None:
        raise WebhookRefused(
            f"alert.webhook: host {host!r} is not on the server's webhook allowlist "
            "(BIASAUDIT_WEBHOOK_ALLOWLIST)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise WebhookRefused(f"alert.webhook: host {host!r} does not resolve: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    private = [a for a in addresses if not _public(a)]
    if private and how != "exact":
        raise WebhookRefused(
            f"alert.webhook: host {host!r} resolves to a private or loopback address "
            f"({private[0]}); list the host exactly in BIASAUDIT_WEBHOOK_ALLOWLIST to allow it"
        )
    return parts.scheme, host, port, addresses[0]


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _connection(
    scheme: str, host: str, port: int, address: str, timeout: float
) -> http.client.HTTPConnection:
    if scheme == "http":
        return http.client.HTTPConnection(address, port, timeout=timeout)
    context = ssl.create_default_context()

    class _Pinned(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection((address, port), timeout=timeout)
            self.sock = context.wrap_socket(raw, server_hostname=host)

    return _Pinned(host, port, timeout=timeout, context=context)


def post(
    url: str, body: bytes, secret: str, *, allowlist: str, timeout: float
) -> tuple[int | None, str | None]:
    """POST ``body`` once; (status code, None) or (status or None, error). Never raises."""
    try:
        scheme, host, port, address = check_webhook(url, allowlist)
    except WebhookRefused as exc:
        return None, str(exc)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = _connection(scheme, host, port, address, timeout)
    headers = {
        "Content-Type": "application/json",
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "User-Agent": "biasaudit-webhook",
        SIGNATURE_HEADER: sign(body, secret),
    }
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65536)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    finally:
        conn.close()
    if 200 <= status < 300:
        return status, None
    return status, f"HTTP {status}"
