"""Leases held by the keeper process: never lapsing while the worker lives, ending with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.storage import repo, session_scope
from audit.storage.models import utcnow
from tests.factories import spec_for
from tests.service_hooks import hold_gil
from tests.workers.conftest import add_audit, add_dataset, audit_row
from workers import reconcile as rec
from workers.lease import Heartbeat, keeper

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]

# Polls the audit's lease from another process and prints the smallest margin it saw.
OBSERVER = """
import sys, time
from audit.storage import repo, session_scope
from audit.storage.models import utcnow
print("ready", flush=True)
worst, end = 1e9, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with session_scope() as session:
        row = repo.load_audit(session=session, audit_id=sys.argv[1])
        worst = min(worst, (row.lease_until - utcnow()).total_seconds())
    time.sleep(0.1)
print(worst, flush=True)
"""

# A worker process: claims the audit, holds its lease through the keeper, then waits.
HOLDER = """
import sys, time
from audit.storage import repo, session_scope
from workers.lease import Heartbeat, keeper
with session_scope() as session:
    repo.claim_audit(session=session, audit_id=sys.argv[1], worker="w", lease_seconds=1)
with Heartbeat(sys.argv[1], worker="w", lease_seconds=1):
    print(keeper().pid, flush=True)
    time.sleep(600)
"""


def _claimed(service_env: dict[str, Any], *, lease: float = 1) -> str:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    with session_scope() as session:
        assert repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=lease)
    return audit_id


def _wait_renewed(audit_id: str, *, beyond: Any = None, timeout: float = 20) -> None:
    """Wait for the keeper's first renewal (a new keeper process takes a moment to start)."""
    since = beyond or audit_row(audit_id).lease_until
    deadline = time.monotonic() + timeout
    while audit_row(audit_id).lease_until <= since:
        assert time.monotonic() < deadline, "the lease keeper never renewed the lease"
        time.sleep(0.05)


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_lease_never_lapses_while_the_worker_holds_the_gil(service_env: dict[str, Any]) -> None:
    # Reproduces the lost lease: with a heartbeat thread the lease lapsed by ~5 s here.
    audit_id = _claimed(service_env)
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.05):
            ticks.append(time.monotonic())

    ticker = threading.Thread(target=tick, daemon=True)
    with Heartbeat(audit_id, worker="w", lease_seconds=1):
        _wait_renewed(audit_id)
        observer = _python(OBSERVER, audit_id, "5")
        assert observer.stdout is not None and observer.stdout.readline().strip() == "ready"
        ticker.start()
        started = time.monotonic()
        hold_gil(4)  # four lease lengths in one C call that never releases the GIL
        ended = time.monotonic()
        stop.set()
        ticker.join()
        worst = float(observer.communicate(timeout=30)[0].strip())
    assert ended - started >= 3.9
    assert not [t for t in ticks if started + 0.2 < t < ended - 0.2]  # no thread ran
    assert worst > 0, f"the lease lapsed by {-worst:.2f} s while the worker was alive"
    row = audit_row(audit_id)
    assert (row.status, row.worker, row.attempts) == ("running", "w", 1)


def test_keeper_ends_with_its_worker_and_the_lease_then_expires(
    service_env: dict[str, Any],
) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    holder = _python(HOLDER, audit_id)
    assert holder.stdout is not None
    keeper_pid = int(holder.stdout.readline())
    claimed = audit_row(audit_id).lease_until
    _wait_renewed(audit_id, beyond=claimed)  # the keeper renews past the 1 s lease
    time.sleep(1.2)
    assert audit_row(audit_id).lease_until > utcnow()
    os.kill(holder.pid, signal.SIGKILL)  # the worker process only, as an OOM kill does
    holder.communicate(timeout=10)

    def alive(pid: int) -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        return "zombie" not in status

    deadline = time.monotonic() + 10
    while alive(keeper_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(keeper_pid), "the lease keeper outlived its worker"
    time.sleep(1.2)
    assert audit_row(audit_id).lease_until < utcnow()  # nobody renews a dead worker's lease


def test_reconciler_leaves_a_live_workers_audit_alone(service_env: dict[str, Any]) -> None:
    audit_id = _claimed(service_env)
    with Heartbeat(audit_id, worker="w", lease_seconds=1):
        _wait_renewed(audit_id)
        time.sleep(3)  # three leases, no progress reported: only the keeper renews
        report = rec.reconcile(requeue_after=0)
    assert audit_id not in report.republished + report.failed + report.cancelled
    row = audit_row(audit_id)
    assert (row.status, row.attempts, row.worker) == ("running", 1, "w")
    assert service_env["redis"].llen("cpu") == 0


def test_started_at_keeps_the_first_start(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    first = utcnow() - timedelta(minutes=10)
    with session_scope() as session:
        repo.claim_audit(session=session, audit_id=audit_id, worker="a", lease_seconds=1, now=first)
    with session_scope() as session:  # the lease long expired: a second worker re-claims
        row = repo.claim_audit(session=session, audit_id=audit_id, worker="b", lease_seconds=60)
        assert row is not None and row.attempts == 2
    assert audit_row(audit_id).started_at == first


def test_released_lease_is_no_longer_renewed(service_env: dict[str, Any]) -> None:
    audit_id = _claimed(service_env)
    with Heartbeat(audit_id, worker="w", lease_seconds=1):
        _wait_renewed(audit_id)
    assert audit_row(audit_id).lease_until > utcnow()
    time.sleep(1.5)
    assert audit_row(audit_id).lease_until < utcnow()


def test_a_forked_child_forgets_its_parents_keeper(service_env: dict[str, Any]) -> None:
    audit_id = _claimed(service_env)
    with Heartbeat(audit_id, worker="w", lease_seconds=1):
        _wait_renewed(audit_id)
        parent_keeper = keeper().pid
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child reports what it sees, then leaves at once
            os.write(write, str(keeper().pid).encode())
            os._exit(0)
        os.close(write)
        seen = os.read(read, 100).decode()
        os.close(read)
        os.waitpid(child, 0)
        assert seen == "None"  # the child would start a keeper of its own
        assert keeper().pid == parent_keeper  # the parent's keeper is untouched
        renewed = audit_row(audit_id).lease_until
        _wait_renewed(audit_id, beyond=renewed)  # and still renewing
