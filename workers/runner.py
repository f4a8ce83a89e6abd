"""What the tasks do, without Celery: claim the audit, keep the lease, compute, store.

The audit row is the job. ``execute_audit`` claims it with one conditional
``UPDATE ... RETURNING`` (``repo.claim_audit``); a duplicate delivery, a job
another live worker holds, or one out of attempts gets None and is simply
acknowledged. While the attempt runs, the worker's lease keeper process renews
the lease (``workers.lease``), so the lease expires only when the worker
process is gone (SIGKILL, OOM, machine lost), never because it is busy: then
the reconciler re-publishes the job and the next claim counts another attempt.

Results are checked against ``BIASAUDIT_MAX_RESULT_BYTES``, the HTML report is
rendered once, and both are stored in one transaction under a unique key, so
two deliveries cannot write twice. Input errors fail the audit at once, no
retry: a bad spec, dataset or model, results over the size limit, results the
database refuses for their content. Database errors that pass (a PostgreSQL
restart) are retried within the attempt while the lease is surely valid
(``lease.retry_budget``). A cancel request is honoured between batches.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.engine.integrity import for_upload
from audit.errors import AuditCancelled, AuditInputError
from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.objects import export_results, get_store
from probes.models.safety import ModelLoadError
from workers import hooks
from workers.inputs import ranged_source, resolve_dataset
from workers.lease import Heartbeat, LeaseLost, retry_budget, retry_transient
from workers.logs import audit_context
from workers.sources import count_at_source, read_source

log = logging.getLogger("biasaudit.worker")

SHARD_LEASE_FACTOR = 4  # a sharded audit's lease covers the shards' wait in the queue


def worker_id(task_id: str | None, hostname: str | None = None) -> str:
    """Who holds a claim: node, process and delivery (unique per delivery)."""
    return f"{hostname or socket.gethostname()}/{os.getpid()}/{task_id or '-'}"[:200]


def _budget() -> float:
    return retry_budget(get_settings().lease_seconds)


def _fail_exhausted() -> None:
    with session_scope() as session:
        for audit_id in repo.fail_stale_audits(session=session):
            log.error("audit %s failed: its worker was lost in every attempt", audit_id)


def _finish(audit_id: str, action: Callable[..., Any], **kwargs: Any) -> None:
    """Record an outcome (failed, cancelled), through database outages within the lease."""

    def record() -> None:
        with session_scope() as session:
            action(session=session, audit_id=audit_id, **kwargs)

    retry_transient(record, what="recording the outcome", budget=_budget())


def _store(
    audit_id: str,
    results: dict[str, Any],
    artifacts: dict[str, bytes] | None = None,
    *,
    project: str,
) -> str:
    """Check the size, render the report once, store both (and the files the probes
    produced, in the same transaction); input errors raise at once."""
    from sqlalchemy.exc import DBAPIError

    from audit.reports.html import render_html
    from audit.storage.errors import (
        MSG_RESULT_UNSTORABLE,
        ResultUnstorable,
        check_result_size,
        unstorable_reason,
    )

    check_result_size(results)  # before rendering: a huge document is refused cheaply
    html = render_html(results)

    def write() -> str:
        with session_scope() as session:
            row = repo.load_audit(session=session, audit_id=audit_id)
            if row is None or row.status != "running":
                log.warning("audit is %s: results not stored", getattr(row, "status", "gone"))
                return "skipped"
            stored = repo.store_results(
                session=session,
                audit_id=audit_id,
                results=results,
                reports={"html": html},
                artifacts=artifacts,
            )
        return "succeeded" if stored else "duplicate"

    try:
        outcome = retry_transient(write, what="storing the results", budget=_budget())
    except DBAPIError as exc:
        reason = unstorable_reason(exc)
        if reason is None:
            raise
        raise ResultUnstorable(
            MSG_RESULT_UNSTORABLE.format(reason=reason), field="results"
        ) from None
    if outcome != "skipped":
        log.info("audit succeeded" if outcome == "succeeded" else "duplicate run ignored")
    if outcome == "succeeded":
        export_results(get_store(), project, audit_id, results=results, html=html)
        _alert(audit_id)
    return outcome


def _alert(audit_id: str) -> None:
    """Raise a scheduled run's alerts and enqueue their deliveries; never fails the audit."""
    from audit.monitoring.notify import after_success

    try:
        after_success(audit_id)
    except Exception as exc:  # noqa: BLE001 - the beat retries pending deliveries
        log.warning("alerts of audit %s not raised: %s", audit_id, exc, exc_info=True)


def _claim(audit_id: str, worker: str) -> tuple[dict[str, Any], str, int] | None:
    settings = get_settings()

    def claim() -> tuple[dict[str, Any], str, int] | None:
        with session_scope() as session:
            row = repo.claim_audit(
                session=session,
                audit_id=audit_id,
                worker=worker,
                lease_seconds=settings.lease_seconds,
                max_attempts=settings.max_attempts,
            )
            return None if row is None else (dict(row.spec), row.project, row.attempts)

    return retry_transient(claim, what="the claim", budget=_budget())


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
        claimed = _claim(audit_id, worker)
        if claimed is None:
            _fail_exhausted()
            log.info("audit not claimable (finished, held by a live worker, or out of attempts)")
            return "skipped"
        raw_spec, project, attempt = claimed
        log.info("audit claimed (attempt %d of %d)", attempt, settings.max_attempts)
        try:
            return _run_claimed(audit_id, raw_spec, project, worker, launch_shards)
        except (AuditInputError, ModelLoadError) as exc:  # retrying cannot fix the input
            error = str(for_upload(exc, raw_spec))  # a changed upload: named by its id
            log.info("audit failed: invalid input: %s", error)
            _finish(audit_id, repo.mark_failed, error=error)
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
    with Heartbeat(audit_id, worker=worker, lease_seconds=settings.lease_seconds) as hb:
        counted = count_at_source(raw_spec, audit_id=audit_id)
        if counted is not None:  # the database grouped the rows: only counts travelled
            counts_results, pushed = counted
            counts_results.setdefault("manifest", {})["dataset_source"] = pushed
            return _store(audit_id, counts_results, project=project)
        raw_spec, source = read_source(raw_spec, project=project, audit_id=audit_id)
        sharding = launch_shards is not None and source is None
        spec, base_dir, rows = _resolve(raw_spec, project, ranged=sharding)
        hooks.run_after_claim(audit_id, spec, hb)
        not_split = None
        if sharding:
            assert launch_shards is not None
            stored = _lookup(lambda: ranged_source(raw_spec, project=project))
            shards, not_split = _plan(spec, base_dir, rows, stored)
            if shards:
                _launch(audit_id, worker, hb, shards, launch_shards)
                return "sharded"
            if stored is not None:  # one process reads it all: a whole, verified copy
                spec, base_dir, rows = _resolve(raw_spec, project, ranged=False)
        artifacts: dict[str, bytes] = {}  # files the probes produce (an lda-search model)
        try:
            results = compute_results(
                spec,
                audit_id=audit_id,
                progress=hb.progress,
                should_cancel=hb.should_cancel,
                base_dir=base_dir,
                artifacts=artifacts,
            )
        finally:
            if source is not None:  # the query's rows were a copy for this run only
                (base_dir / spec["dataset"]["path"]).unlink(missing_ok=True)
        if source is not None:  # what was read: name, query, window, rows (never the URL)
            results.setdefault("manifest", {})["dataset_source"] = source
        if not_split is not None:  # large enough to shard, but the file cannot be split
            results["dataset"]["not_split"] = not_split
        return _store(audit_id, results, artifacts, project=project)


def _launch(
    audit_id: str,
    worker: str,
    hb: Heartbeat,
    shards: list[Any],
    launch_shards: Callable[[str, list[Any]], None],
) -> None:
    """Lengthen the lease, start the chord, and keep the lease while the shards wait.

    The lease keeper of this worker process goes on renewing the claim after the
    task returns, until the merge stores the results (or the audit fails or is
    cancelled) or ``BIASAUDIT_SHARD_WAIT_SECONDS`` pass; so shards waiting in a busy
    queue for longer than a lease are not mistaken for lost work.
    """
    settings = get_settings()
    lease = settings.lease_seconds * SHARD_LEASE_FACTOR

    def lengthen() -> None:
        with session_scope() as session:
            repo.update_progress(
                session=session, audit_id=audit_id, progress=0.0, worker=worker, lease_seconds=lease
            )

    retry_transient(lengthen, what="lengthening the lease", budget=_budget())
    hb.extend(lease)
    launch_shards(audit_id, shards)
    hb.detach(lease_seconds=lease, until=time.time() + settings.shard_wait_seconds)
    log.info("audit split into %d shards", len(shards))


def _lookup(fn: Callable[[], Any]) -> Any:
    return retry_transient(fn, what="the dataset lookup", budget=_budget())


def _resolve(
    raw_spec: dict[str, Any], project: str, *, ranged: bool
) -> tuple[dict[str, Any], Path, int | None]:
    return _lookup(lambda: resolve_dataset(raw_spec, project=project, ranged=ranged))  # type: ignore[no-any-return]


def _plan(
    spec_dict: dict[str, Any], base_dir: Path, rows: int | None, stored: Any = None
) -> tuple[list[Any], str | None]:
    """The shards of a large count-only audit ([] to run it here), and why a file large
    enough to shard was not split (one Parquet row group, a compressed CSV). ``stored``:
    the dataset read by ranges from the object store (:func:`workers.inputs.ranged_source`)."""
    from audit.engine import data as data_mod
    from audit.engine import sharding
    from audit.engine.spec import parse_spec

    settings = get_settings()
    spec, _ = parse_spec(spec_dict)
    if not sharding.shardable(spec):
        return [], None
    path = stored.check() if stored is not None else data_mod.resolve_path(spec.dataset, base_dir)
    if not sharding.should_shard(
        spec,
        path,
        rows=rows,
        threshold_rows=settings.shard_threshold_rows,
        threshold_bytes=settings.shard_threshold_bytes,
    ):
        return [], None
    sharding.preflight(spec, path, digest=False)
    shards = sharding.plan_for(
        spec, path, rows=rows, shard_rows=settings.shard_rows, max_shards=settings.max_shards
    )
    if len(shards) > 1:  # verified once, here (run here, the engine verifies as it reads)
        sharding.verify(spec, path)
        return shards, None
    return [], sharding.not_split_reason(spec, path)


def _after_crash(audit_id: str, worker: str, attempt: int, exc: BaseException) -> None:
    """An unexpected error: fail on the last attempt, else free the lease for a retry."""
    from celery.exceptions import SoftTimeLimitExceeded

    from audit.storage.errors import is_transient_db_error

    settings = get_settings()
    try:
        if is_transient_db_error(exc):  # the database stayed down: the lease will expire
            log.error("database unavailable longer than the lease allows; attempt abandoned")
        elif isinstance(exc, SoftTimeLimitExceeded):
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
