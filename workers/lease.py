"""Keeping a claimed audit's lease alive, and riding out database outages within it.

The lease must not expire while its worker process is alive, however busy it
is: a long C call that holds the GIL (a native library, a regular expression)
freezes every Python thread of the process, so a heartbeat *thread* would stop
and the reconciler would hand the audit to a second worker. The lease is
therefore renewed by a helper process (:mod:`workers.lease_keeper`), one per
worker process, started on the first claim: the worker sends it "hold" and
"release" lines on a pipe; it renews each held lease every lease/3 seconds and
exits as soon as the pipe closes or its parent is gone (SIGKILL, OOM, the
machine lost), so the lease expires exactly when the worker is gone.

:class:`Heartbeat` wraps one claim: it registers the lease with the keeper and
relays the engine's progress and cancel checks (at most one database write a
second, from the compute thread). :func:`retry_transient` retries a storage
call through database errors that pass (a PostgreSQL restart) for as long as
the lease is known to be valid.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import IO, Any, TypeVar

from audit.storage import repo, session_scope

log = logging.getLogger("biasaudit.worker")

T = TypeVar("T")
PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes (and cancel checks)
# While the database is down the keeper cannot renew either: the lease is still valid for
# at least two thirds of its length after the first failure (the last renewal was at most
# a third of a lease before it), so a storage call is retried that long.
RETRY_FRACTION = 2.0 / 3.0
RETRY_MAX_DELAY = 2.0


class LeaseLost(RuntimeError):
    """This worker no longer holds the audit (its lease expired and it was re-claimed)."""


class LeaseKeeper:
    """The parent side of the lease keeper process of this worker process.

    Thread-safe; a forked child forgets the parent's keeper (and its pipe) and
    starts its own on first use, so a keeper never outlives the process it
    serves because a fork kept its pipe open.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._holds: dict[str, dict[str, Any]] = {}

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.lease_keeper", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            close_fds=True,
        )
        log.info("lease keeper started (pid %d)", proc.pid)
        return proc

    def _write(self, line: dict[str, Any]) -> None:
        """Send one command (the lock is held); a dead keeper is restarted with every hold.

        Commands are idempotent (keyed), so after a restart the current holds are sent
        again together with ``line``.
        """
        for _ in range(2):
            proc = self._proc
            lines = [line]
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    log.warning("lease keeper exited with %s; restarting it", proc.returncode)
                proc = self._proc = self._spawn()
                lines = [*self._holds.values(), line]
            stdin: IO[bytes] | None = proc.stdin
            assert stdin is not None
            try:
                stdin.write(b"".join((json.dumps(x) + "\n").encode() for x in lines))
                stdin.flush()
                return
            except (OSError, ValueError):  # broken pipe: the keeper just died
                self._proc = None
                if proc.poll() is None:  # alive but deaf: replace it
                    proc.kill()
                proc.wait(timeout=5)
        raise RuntimeError("the lease keeper process could not be started")

    def start(self) -> None:
        """Start the keeper now (a worker process does at start, so the first claim
        does not wait for it); it is also started on demand."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._spawn()

    def hold(self, audit_id: str, *, worker: str | None, lease_seconds: float, url: str) -> str:
        """Renew ``audit_id``'s lease (held by ``worker``; any holder if None) until released."""
        key = uuid.uuid4().hex
        line = {
            "op": "hold",
            "key": key,
            "audit_id": audit_id,
            "worker": worker,
            "lease_seconds": lease_seconds,
            "url": url,
        }
        with self._lock:
            now = time.time()  # forget detached holds whose time is over (the keeper did)
            for old in [k for k, v in self._holds.items() if v.get("until", now + 1) <= now]:
                del self._holds[old]
            self._holds[key] = line
            self._write(line)
        return key

    def update(self, key: str, *, lease_seconds: float, until: float | None = None) -> None:
        """Change the length of a held lease (a sharded audit waits longer), and with
        ``until`` (wall-clock seconds) keep holding it only until then."""
        with self._lock:
            line = self._holds.get(key)
            if line is not None:
                line["lease_seconds"] = lease_seconds
                if until is not None:
                    line["until"] = until
                self._write(line)

    def release(self, key: str) -> None:
        """Stop renewing (the audit finished, failed, was cancelled or lost)."""
        with self._lock:
            held = self._holds.pop(key, None) is not None
            if held and self._proc is not None and self._proc.poll() is None:
                try:
                    self._write({"op": "release", "key": key})
                except RuntimeError:
                    pass  # the keeper is gone: nothing renews the lease any more

    @property
    def pid(self) -> int | None:
        """The keeper process's id (None before the first hold)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def close(self) -> None:
        """Stop the keeper (its leases then expire unless renewed otherwise)."""
        with self._lock:
            proc, self._proc = self._proc, None
            self._holds.clear()
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's keeper without touching the process."""
        proc, self._proc = self._proc, None
        self._lock = threading.Lock()
        self._holds = {}
        if proc is not None:
            _INHERITED.append(proc)  # never garbage-collected: no "still running" warning
            if proc.stdin is not None:
                raw = getattr(proc.stdin, "raw", proc.stdin)  # close unflushed: no stray bytes
                try:  # the child's copy of the pipe: the parent's stays open
                    raw.close()
                except OSError:
                    pass


_INHERITED: list[subprocess.Popen[bytes]] = []
_KEEPER = LeaseKeeper()
os.register_at_fork(after_in_child=_KEEPER.forget_after_fork)
atexit.register(_KEEPER.close)  # a normal exit ends the keeper at once (it would anyway)


def keeper() -> LeaseKeeper:
    """This process's lease keeper."""
    return _KEEPER


class Heartbeat:
    """One claim's lease (renewed by the keeper), progress, cancel requests and deadline.

    ``progress`` and ``should_cancel`` are the engine's callbacks; both raise
    :class:`LeaseLost` once the claim is gone, which stops the computation.
    ``worker=None`` renews whoever holds the audit (shards of a claimed audit).
    """

    def __init__(
        self,
        audit_id: str,
        *,
        worker: str | None,
        lease_seconds: float,
        keep_progress: bool = False,
    ) -> None:
        self.audit_id = audit_id
        self.keep_progress = keep_progress
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.fraction = 0.0
        self.cancel_requested = False
        self.lost = False
        self._written = 0.0
        self._key: str | None = None

    def beat(self) -> None:
        """Write progress and renew the lease now (one UPDATE); errors are logged."""
        try:
            with session_scope() as session:
                fraction = self.fraction
                if self.keep_progress:  # shards: progress is advanced per finished shard
                    current = repo.load_audit(session=session, audit_id=self.audit_id)
                    fraction = current.progress if current is not None else 0.0
                row = repo.update_progress(
                    session=session,
                    audit_id=self.audit_id,
                    progress=min(max(fraction, 0.0), 1.0),
                    worker=self.worker,
                    lease_seconds=self.lease_seconds,
                )
                if row is None:
                    self.lost = True
                else:
                    self.cancel_requested = bool(row.cancel_requested)
        except Exception as exc:  # noqa: BLE001 - a DB blip must not kill the audit
            log.warning("progress write failed: %s", type(exc).__name__)
        self._written = time.monotonic()

    def extend(self, lease_seconds: float) -> None:
        """Renew at a new lease length from now on (a sharded audit's wait)."""
        self.lease_seconds = lease_seconds
        if self._key is not None:
            keeper().update(self._key, lease_seconds=lease_seconds)

    def detach(self, *, lease_seconds: float, until: float) -> None:
        """Keep renewing this claim after the task returns, until ``until`` (wall clock) or
        until the audit is no longer running for this worker (merged, failed, cancelled).

        A sharded audit's parent does so: its shards may wait in a busy queue for
        longer than any lease, and the reconciler must not start the audit again
        meanwhile. If this worker process dies, the renewals stop with it.
        """
        if self._key is not None:
            keeper().update(self._key, lease_seconds=lease_seconds, until=until)
            self._key = None  # __exit__ no longer releases it

    def __enter__(self) -> Heartbeat:
        from audit.settings import get_settings

        self._key = keeper().hold(
            self.audit_id,
            worker=self.worker,
            lease_seconds=self.lease_seconds,
            url=get_settings().db_url,
        )
        return self

    def __exit__(self, *_: object) -> None:
        if self._key is not None:
            keeper().release(self._key)
            self._key = None

    def _check(self) -> None:
        if time.monotonic() - self._written >= PROGRESS_WRITE_INTERVAL:
            self.beat()
        if self.lost:
            raise LeaseLost(f"audit {self.audit_id}: the claim was lost")

    def progress(self, fraction: float) -> None:
        self.fraction = fraction
        self._check()

    def should_cancel(self) -> bool:
        self._check()
        return self.cancel_requested


def retry_transient(action: Callable[[], T], *, what: str, budget: float) -> T:
    """``action()``, retried through transient database errors for ``budget`` seconds.

    The budget starts at the first failure; errors the data caused (and any
    other exception) propagate at once. Backs off from 0.2 s to 2 s.
    """
    from audit.storage.errors import is_transient_db_error

    deadline: float | None = None
    delay = 0.2
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            now = time.monotonic()
            deadline = now + budget if deadline is None else deadline
            if now >= deadline:
                log.error("database unavailable for %.0f s during %s; giving up", budget, what)
                raise
            log.warning("database unavailable during %s (%s); retrying", what, type(exc).__name__)
            time.sleep(min(delay, max(deadline - now, 0.0)))
            delay = min(delay * 2, RETRY_MAX_DELAY)


def retry_budget(lease_seconds: float) -> float:
    """How long a storage call may be retried: the time the lease surely stays valid."""
    return lease_seconds * RETRY_FRACTION
