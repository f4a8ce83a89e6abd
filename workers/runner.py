"""What the tasks do, without Celery: claim the audit, keep the lease, compute, store.

The audit row is the job. ``execute_audit`` claims it with one conditional
``UPDATE ... RETURNING`` (``repo.claim_audit``); a duplicate delivery, a job
another live worker holds, or one out of attempts gets None and is simply
acknowledged. While the engine runs, a heartbeat thread renews the lease, so
the lease expires only when the process is gone (SIGKILL, OOM, machine lost):
then the reconciler re-publishes the job and the next claim counts another
attempt. Results are stored under a unique key, so two deliveries cannot
write twice. Input errors fail the audit at once (no retry); a cancel request
is honoured between batches.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.errors import AuditCancelled, AuditInputError
from audit.settings import get_settings
from audit.storage import repo, session_scope
from probes.models.safety import ModelLoadError
from workers.logs import audit_context

log = logging.getLogger("biasaudit.worker")

SHARD_LEASE_FACTOR = 4  # a sharded audit's lease covers the shards' wait in the queue
PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes (and cancel checks)
TEST_HOOKS_VARIABLE = "BIASAUDIT_TEST_CRASH_HOOKS"
_HOOK = re.compile(r"biasaudit-test:(crash|sleep)(?:=([0-9.]+))?")


class LeaseLost(RuntimeError):
    """This worker no longer holds the audit (its lease expired and it was re-claimed)."""


def worker_id(task_id: str | None, hostname: str | None = None) -> str:
    """Who holds a claim: node, process and delivery (unique per delivery)."""
    return f"{hostname or socket.gethostname()}/{os.getpid()}/{task_id or '-'}"[:200]


class Heartbeat:
    """Renews an audit's lease from a thread and relays progress and cancel requests.

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
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def beat(self) -> None:
        """Write progress and renew the lease now (one UPDATE)."""
        with self._lock:
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
                log.warning("lease heartbeat failed: %s", type(exc).__name__)
            self._written = time.monotonic()

    def _run(self) -> None:
        interval = max(self.lease_seconds / 3.0, 0.2)
        while not self._stop.wait(interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

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


def resolve_dataset(
    spec: dict[str, Any], *, project: str
) -> tuple[dict[str, Any], Path, int | None]:
    """The spec as the engine runs it, the project folder, and the stored row count.

    ``dataset.id`` is looked up in the project's datasets; then
    :func:`audit.engine.confine.confine_spec` checks the spec exactly as the API did
    at submission (the worker trusts no path and no ``model.trusted``); the engine
    runs the result with the project folder as its base folder. A refusal is an
    input error: the audit fails, no retry.
    """
    from audit.engine.confine import confine_spec, project_roots

    roots = project_roots(get_settings(), project)
    spec = copy.deepcopy(spec)
    dataset = spec.setdefault("dataset", {})
    rows = None
    if dataset.get("id"):
        with session_scope() as session:
            record = repo.get_dataset(
                session=session, project=project, dataset_id=str(dataset["id"])
            )
            if record is None:
                raise AuditInputError(
                    f"dataset.id: no dataset {dataset['id']!r} in project {project!r}; "
                    "upload it with POST /v1/datasets",
                    field="dataset.id",
                )
            # project-relative, so that no message shows the server's folders
            dataset["path"] = os.path.relpath(record.path, roots.project)
            rows = int(record.rows)
    return confine_spec(spec, roots=roots).resolved, roots.project, rows


def _test_hooks(spec: dict[str, Any], heartbeat: Heartbeat) -> None:
    """Fault-injection for the integration tests, honoured only with the variable set.

    ``description`` containing ``biasaudit-test:crash`` SIGKILLs this process
    (a worker lost mid-audit); ``biasaudit-test:sleep=S`` works for S seconds
    (heartbeating, cancellable) before the real computation.
    """
    if os.environ.get(TEST_HOOKS_VARIABLE) != "1":
        return
    for name, value in _HOOK.findall(str(spec.get("description") or "")):
        if name == "crash":
            log.warning("test hook: killing this worker process")
            os.kill(os.getpid(), signal.SIGKILL)
        deadline = time.monotonic() + float(value or 1)
        while time.monotonic() < deadline:
            if heartbeat.should_cancel():
                raise AuditCancelled("audit cancelled")
            time.sleep(0.1)


def _fail_exhausted() -> None:
    with session_scope() as session:
        for audit_id in repo.fail_stale_audits(session=session):
            log.error("audit %s failed: its worker was lost in every attempt", audit_id)


def _finish(audit_id: str, action: Callable[..., Any], **kwargs: Any) -> None:
    with session_scope() as session:
        action(session=session, audit_id=audit_id, **kwargs)


def _store(audit_id: str, results: dict[str, Any]) -> str:
    with session_scope() as session:
        row = repo.load_audit(session=session, audit_id=audit_id)
        if row is None or row.status != "running":
            log.warning("audit is %s: results not stored", getattr(row, "status", "gone"))
            return "skipped"
        stored = repo.store_results(session=session, audit_id=audit_id, results=results)
    log.info("audit succeeded" if stored else "results already stored: duplicate run ignored")
    return "succeeded" if stored else "duplicate"


def execute_audit(
    audit_id: str,
    *,
    worker: str,
    launch_shards: Callable[[str, list[Any]], None] | None = None,
) -> str:
    """Run one delivery of ``biasaudit.run_audit``; returns what happened (for the log).

    Outcomes: ``skipped`` (not claimable: done, held by a live worker, or out
    of attempts), ``succeeded``, ``duplicate``, ``failed``, ``cancelled``,
    ``lost`` (claim taken over), ``sharded`` (a chord now runs it).
    """
    settings = get_settings()
    with audit_context(audit_id):
        with session_scope() as session:
            row = repo.claim_audit(
                session=session,
                audit_id=audit_id,
                worker=worker,
                lease_seconds=settings.lease_seconds,
                max_attempts=settings.max_attempts,
            )
            claimed = None if row is None else (dict(row.spec), row.project, row.attempts)
        if claimed is None:
            _fail_exhausted()
            log.info("audit not claimable (finished, held by a live worker, or out of attempts)")
            return "skipped"
        raw_spec, project, attempt = claimed
        log.info("audit claimed (attempt %d of %d)", attempt, settings.max_attempts)
        try:
            return _run_claimed(audit_id, raw_spec, project, worker, launch_shards)
        except (AuditInputError, ModelLoadError) as exc:  # retrying cannot fix the input
            log.info("audit failed: invalid input: %s", exc)
            _finish(audit_id, repo.mark_failed, error=str(exc))
            return "failed"
        except AuditCancelled:
            _finish(audit_id, repo.mark_cancelled)
            log.info("audit cancelled")
            return "cancelled"
        except LeaseLost:
            log.warning("claim lost to another worker; stopping this run")
            return "lost"
        except Exception as exc:
            _after_crash(audit_id, worker, attempt, exc)
            raise


def _run_claimed(
    audit_id: str,
    raw_spec: dict[str, Any],
    project: str,
    worker: str,
    launch_shards: Callable[[str, list[Any]], None] | None,
) -> str:
    from audit.engine.run import compute_results

    settings = get_settings()
    spec, base_dir, rows = resolve_dataset(raw_spec, project=project)
    with Heartbeat(audit_id, worker=worker, lease_seconds=settings.lease_seconds) as hb:
        _test_hooks(spec, hb)
        if launch_shards is not None:
            shards = _plan(spec, base_dir, rows)
            if shards:
                with session_scope() as session:
                    repo.update_progress(
                        session=session,
                        audit_id=audit_id,
                        progress=0.0,
                        worker=worker,
                        lease_seconds=settings.lease_seconds * SHARD_LEASE_FACTOR,
                    )
                hb.lease_seconds = settings.lease_seconds * SHARD_LEASE_FACTOR
                launch_shards(audit_id, shards)
                log.info("audit split into %d shards", len(shards))
                return "sharded"
        results = compute_results(
            spec,
            audit_id=audit_id,
            progress=hb.progress,
            should_cancel=hb.should_cancel,
            base_dir=base_dir,
        )
    return _store(audit_id, results)


def _plan(spec_dict: dict[str, Any], base_dir: Path, rows: int | None) -> list[Any]:
    from audit.engine import data as data_mod
    from audit.engine import sharding
    from audit.engine.spec import parse_spec

    settings = get_settings()
    spec, _ = parse_spec(spec_dict)
    if not sharding.shardable(spec):
        return []
    path = data_mod.resolve_path(spec.dataset, base_dir)
    if not sharding.should_shard(
        spec,
        path,
        rows=rows,
        threshold_rows=settings.shard_threshold_rows,
        threshold_bytes=settings.shard_threshold_bytes,
    ):
        return []
    sharding.preflight(spec, path)
    shards = sharding.plan_for(
        spec, path, rows=rows, shard_rows=settings.shard_rows, max_shards=settings.max_shards
    )
    return shards if len(shards) > 1 else []


def _after_crash(audit_id: str, worker: str, attempt: int, exc: BaseException) -> None:
    """An unexpected error: fail on the last attempt, else free the lease for a retry."""
    from celery.exceptions import SoftTimeLimitExceeded

    settings = get_settings()
    try:
        if isinstance(exc, SoftTimeLimitExceeded):
            error = (
                f"time limit: the audit ran longer than {settings.task_soft_time_limit} s "
                "(BIASAUDIT_TASK_SOFT_TIME_LIMIT)"
            )
            _finish(audit_id, repo.mark_failed, error=error)
        elif attempt >= settings.max_attempts:
            error = f"internal error in attempt {attempt}: {type(exc).__name__}: {exc}"[:1000]
            _finish(audit_id, repo.mark_failed, error=error)
        else:  # expire the lease now: the reconciler re-publishes it at its next run
            with session_scope() as session:
                repo.update_progress(
                    session=session,
                    audit_id=audit_id,
                    progress=0.0,
                    worker=worker,
                    lease_seconds=0,
                )
    except Exception as inner:  # noqa: BLE001 - the lease expires by itself anyway
        log.warning("could not record the failure: %s", type(inner).__name__)
    log.exception("audit attempt %d crashed", attempt)
