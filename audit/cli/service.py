"""The service subcommands of ``biasaudit``: ``serve`` and ``keys create``.

``audit/cli/main.py`` parses the arguments and calls these functions; each
returns an exit code. ``serve`` migrates the database (idempotent) and starts
uvicorn; ``worker`` and ``beat`` hand over to ``workers.cli`` (imported only
there, so ``serve`` never loads Celery worker code or torch).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_OK, EXIT_INVALID = 0, 2
MSG_NO_BROKER = (
    "BIASAUDIT_BROKER_URL is not set: the API enqueues audits on a broker, e.g. "
    "export BIASAUDIT_BROKER_URL=redis://127.0.0.1:6379/0 (for one-off audits without a "
    "service, use 'biasaudit run SPEC')"
)
MSG_WORKERS = "{source}: must be a whole number of API processes, 1 or more, got {value!r}"


def api_workers(args: argparse.Namespace) -> int:
    """The number of uvicorn processes: ``args.workers``, else ``WEB_CONCURRENCY``, else 1.

    Raises ``ValueError`` naming the option or variable when it is not a positive integer.
    """
    value = getattr(args, "workers", None)
    source = "--workers"
    if value is None:
        value, source = os.environ.get("WEB_CONCURRENCY", "").strip() or "1", "WEB_CONCURRENCY"
    try:
        workers = int(value)
    except (TypeError, ValueError):
        raise ValueError(MSG_WORKERS.format(source=source, value=value)) from None
    if workers < 1:
        raise ValueError(MSG_WORKERS.format(source=source, value=value))
    return workers


def _err(message: str) -> None:
    print(f"biasaudit: error: {message}", file=sys.stderr)


def serve(args: argparse.Namespace) -> int:
    """Migrate the database, then run the API under uvicorn on ``args.host:args.port``.

    ``args.workers`` (when the parser has ``--workers``) or ``WEB_CONCURRENCY`` sets the
    number of processes (default 1); the API is stateless, so they share nothing but the
    database and the broker. uvicorn picks uvloop and httptools when they are installed
    (``uvicorn[standard]``), which roughly halves its per-request overhead.

    Slow or oversized clients are bounded (docs/security.md): request headers by
    ``BIASAUDIT_MAX_REQUEST_HEADER_BYTES`` / ``BIASAUDIT_MAX_REQUEST_HEADERS`` and
    ``BIASAUDIT_REQUEST_HEADER_TIMEOUT``, bodies by ``BIASAUDIT_REQUEST_BODY_TIMEOUT``
    (:mod:`audit.api.protocol`; with h11, its incomplete-event limit), and a SIGTERM
    waits at most ``BIASAUDIT_SHUTDOWN_TIMEOUT`` seconds for requests in flight.
    """
    import uvicorn

    from audit.api.logging import configure_logging
    from audit.settings import get_settings
    from audit.storage.db import upgrade

    try:
        settings = get_settings()
        workers = api_workers(args)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_INVALID
    if not settings.broker_url:
        _err(MSG_NO_BROKER)
        return EXIT_INVALID
    configure_logging(os.environ.get("BIASAUDIT_LOG_LEVEL", "INFO").upper())
    upgrade(settings.db_url)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        "audit.api.app:create_server_app",
        factory=True,
        host=args.host,
        port=int(args.port),
        workers=workers,
        access_log=False,  # the app logs each request itself, as JSON, without headers
        log_config=None,
        proxy_headers=False,
        server_header=False,
        http=_http_protocol(),
        h11_max_incomplete_event_size=settings.max_request_header_bytes,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return EXIT_OK


def _http_protocol() -> Any:
    """The guarded httptools protocol when httptools is installed, else uvicorn's h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    from audit.api.protocol import GuardedHttpToolsProtocol

    return GuardedHttpToolsProtocol


def keys_create(args: argparse.Namespace) -> int:
    """Create an API token for ``args.project`` with ``args.role``; print only the token, once."""
    from audit.settings import get_settings
    from audit.storage.db import session_scope, upgrade
    from audit.storage.events import local_actor as cli_actor
    from audit.storage.repo import ProjectError, create_token

    try:
        settings = get_settings()
        upgrade(settings.db_url)
        with session_scope(settings.db_url) as session:
            token, _ = create_token(
                session=session,
                project=args.project,
                role=args.role,
                name=getattr(args, "name", None),
                actor=cli_actor(),
            )
    except (ProjectError, ValueError) as exc:
        _err(str(exc))
        return EXIT_INVALID
    print(token)
    return EXIT_OK
