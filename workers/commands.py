"""The ``worker`` and ``beat`` commands of ``biasaudit``, registered by this package.

The command line lives in ``audit.cli``, which never imports ``workers``; the
``biasaudit.commands`` entry point hands it :func:`add_commands`. Celery is imported
only when a command runs, so ``biasaudit --help`` stays fast.
"""

from __future__ import annotations

from typing import Any


def _cli() -> Any:
    from workers import cli

    return cli


def add_commands(sub: Any) -> None:
    """Add ``worker`` and ``beat`` to the ``biasaudit`` parser (entry point
    ``biasaudit.commands``): the command line lives in ``audit``, which never imports
    ``workers``; this package registers its own commands instead."""
    w = sub.add_parser("worker", help="start a Celery worker")
    w.add_argument("--queues", default="gpu,cpu")
    w.add_argument("--concurrency", type=int, default=None)
    w.set_defaults(
        func=lambda args: _cli().run_worker(
            queues=[q.strip() for q in str(args.queues).split(",") if q.strip()],
            concurrency=args.concurrency,
        )
    )
    b = sub.add_parser("beat", help="start the scheduler for recurring audits")
    b.set_defaults(func=lambda args: _cli().run_beat())
