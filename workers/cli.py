"""``biasaudit worker`` and ``biasaudit beat``: start Celery the way the service needs it.

- A worker consuming ``gpu`` runs one process (one process per GPU: start one
  worker per device with ``CUDA_VISIBLE_DEVICES=i``); a CPU-only worker runs
  one process per core by default. Add machines by starting more workers.
- ``biasaudit beat`` is the singleton scheduler *and* the consumer of the
  ``maintenance`` queue (reconciler, schedules), so maintenance never waits
  behind long audits.
- The node name is ``<queues>@<host>`` (override with
  ``BIASAUDIT_WORKER_NAME``), so a container's health check can ping it.

``python -m workers.cli worker --queues cpu`` works without the ``biasaudit``
entry point.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from workers.app import QUEUE_MAINTENANCE, QUEUES

MSG_GPU_CONCURRENCY = (
    "--concurrency: a worker consuming the gpu queue runs one process (one per GPU), got {n}; "
    "start one worker per GPU with CUDA_VISIBLE_DEVICES=<index>"
)
MSG_QUEUES = "--queues: unknown queue(s) {bad}; choose from {known}"


def _node_name(queues: list[str]) -> str:
    return os.environ.get("BIASAUDIT_WORKER_NAME") or f"{'-'.join(queues)}@{socket.gethostname()}"


def worker_argv(*, queues: list[str], concurrency: int | None) -> list[str]:
    """The ``celery worker`` arguments for these queues (validated)."""
    queues = [q.strip() for q in queues if q.strip()]
    bad = [q for q in queues if q not in QUEUES]
    if not queues or bad:
        raise ValueError(MSG_QUEUES.format(bad=", ".join(bad) or "(none)", known=", ".join(QUEUES)))
    if "gpu" in queues:
        if concurrency not in (None, 1):
            raise ValueError(MSG_GPU_CONCURRENCY.format(n=concurrency))
        concurrency = 1
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"--concurrency: must be at least 1, got {concurrency}")
    return [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency or os.cpu_count() or 1}",
        "--pool=prefork",
        "--loglevel=INFO",
        f"--hostname={_node_name(queues)}",
        "--without-gossip",
        "--without-mingle",
    ]


def _migrate() -> None:
    from audit.storage import db

    db.upgrade()


def _usage_error(exc: ValueError) -> int:
    print(f"biasaudit: error: {exc}", file=sys.stderr)
    return 2


def run_worker(*, queues: list[str], concurrency: int | None) -> int:
    """Start a Celery worker consuming ``queues`` (blocks until it shuts down).

    Returns 2 with a message on stderr when the queues, the concurrency or the
    settings (e.g. a visibility timeout below the time limit) are invalid.
    """
    try:
        argv = worker_argv(queues=queues, concurrency=concurrency)
        from workers.app import app
    except ValueError as exc:
        return _usage_error(exc)
    _migrate()
    app.worker_main(argv)
    return 0


def beat_argv() -> list[str]:
    """The ``celery worker --beat`` arguments of the scheduler process."""
    from audit.settings import get_settings

    schedule = get_settings().artifact_dir / "celerybeat-schedule"
    return [
        "worker",
        "--beat",
        f"--schedule={schedule}",
        f"--queues={QUEUE_MAINTENANCE}",
        "--concurrency=1",
        "--pool=solo",
        "--loglevel=INFO",
        f"--hostname={os.environ.get('BIASAUDIT_WORKER_NAME') or 'beat@' + socket.gethostname()}",
        "--without-gossip",
        "--without-mingle",
    ]


def run_beat() -> int:
    """Start the scheduler (periodic reconcile and schedules) with its maintenance consumer."""
    try:
        argv = beat_argv()
        from workers.app import app
    except ValueError as exc:
        return _usage_error(exc)
    from audit.settings import get_settings

    get_settings().artifact_dir.mkdir(parents=True, exist_ok=True)
    _migrate()
    app.worker_main(argv)
    return 0


def main(argv: list[str] | None = None) -> int:
    from workers.commands import add_commands

    parser = argparse.ArgumentParser(prog="python -m workers.cli")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
