"""The lease keeper process: renews the leases a worker process holds, and nothing else.

Started by :class:`workers.lease.LeaseKeeper` as ``python -m workers.lease_keeper
PARENT_PID``. It reads JSON lines on stdin::

    {"op": "hold", "key": K, "audit_id": A, "worker": W, "lease_seconds": S, "url": U,
     "until": T}
    {"op": "release", "key": K}

(``until``, optional: a wall-clock time after which the hold is dropped, for the lease
a worker keeps after its task returned, while a sharded audit's shards wait)
and renews each held lease every ``S / 3`` seconds with one conditional UPDATE
(``repo.renew_lease``; progress is left to the worker). A renewal that finds the
audit no longer running for ``W`` drops the hold; a database error is logged and
retried within a second. It exits when stdin closes or its parent is gone, so a
dead worker's leases expire as they should. Being its own process, it keeps
renewing while the worker's Python is stuck in a long call that holds the GIL.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("biasaudit.lease")

MIN_INTERVAL = 0.2
ERROR_RETRY = 1.0
IDLE_WAKEUP = 1.0  # seconds between checks that the parent is alive, when nothing is due


@dataclass
class Hold:
    audit_id: str
    worker: str | None
    lease_seconds: float
    url: str
    due: float
    until: float | None = None

    @property
    def interval(self) -> float:
        return max(self.lease_seconds / 3.0, MIN_INTERVAL)


def renew(hold: Hold) -> bool | None:
    """Renew one lease: True renewed, False no longer ours, None the database failed."""
    from audit.storage import session_scope
    from audit.storage.jobs import renew_lease
    from workers.logs import audit_context

    with audit_context(hold.audit_id):
        try:
            with session_scope(hold.url) as session:
                ok = renew_lease(
                    session=session,
                    audit_id=hold.audit_id,
                    worker=hold.worker,
                    lease_seconds=hold.lease_seconds,
                )
        except Exception as exc:  # noqa: BLE001 - keep renewing the others, retry soon
            log.warning("lease renewal failed: %s; retrying", type(exc).__name__)
            return None
        if not ok:
            log.info("lease no longer held by this worker; stopped renewing it")
        return ok


def apply(holds: dict[str, Hold], line: dict[str, Any]) -> None:
    """Apply one command from the worker."""
    key = str(line.get("key"))
    if line.get("op") == "release":
        holds.pop(key, None)
    elif line.get("op") == "hold":
        lease = float(line["lease_seconds"])
        previous = holds.get(key)
        due = time.monotonic() + max(lease / 3.0, MIN_INTERVAL)
        if previous is not None:
            due = min(previous.due, due)
        holds[key] = Hold(
            audit_id=str(line["audit_id"]),
            worker=line.get("worker"),
            lease_seconds=lease,
            url=str(line["url"]),
            due=due,
            until=None if line.get("until") is None else float(line["until"]),
        )


def serve(parent: int, stdin_fd: int) -> int:
    """The loop: read commands, renew what is due; return when the parent is gone."""
    holds: dict[str, Hold] = {}
    buffer = b""
    while True:
        if os.getppid() != parent:
            return 0
        now = time.monotonic()
        next_due = min((h.due for h in holds.values()), default=now + IDLE_WAKEUP)
        timeout = min(max(next_due - now, 0.0), IDLE_WAKEUP)
        readable, _, _ = select.select([stdin_fd], [], [], timeout)
        if readable:
            data = os.read(stdin_fd, 65536)
            if not data:
                return 0  # the worker process closed the pipe or died
            buffer += data
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                try:
                    apply(holds, json.loads(raw))
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("lease keeper: bad command ignored: %s", type(exc).__name__)
        for key, hold in list(holds.items()):
            if hold.until is not None and time.time() >= hold.until:
                holds.pop(key, None)  # the shards' wait is over: the lease may lapse
                continue
            if hold.due > time.monotonic():
                continue
            outcome = renew(hold)
            if outcome is False:
                holds.pop(key, None)
            else:
                hold.due = time.monotonic() + (hold.interval if outcome else ERROR_RETRY)


def main(argv: list[str] | None = None) -> int:
    """Serve the worker process ``argv[0]`` (default: the parent) until it is gone.

    SIGINT and SIGTERM are ignored: a Ctrl-C or a ``kill`` of the process group
    must not stop the renewals of an audit the worker is still finishing (warm
    shutdown); the keeper ends with its worker, at most a second later.
    """
    from workers.logs import configure_json_logging

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    args = sys.argv[1:] if argv is None else argv
    configure_json_logging("INFO")
    parent = int(args[0]) if args else os.getppid()
    import audit.storage.jobs  # noqa: F401 - loaded before the first renewal is due

    return serve(parent, sys.stdin.fileno())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
