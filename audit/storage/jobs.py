"""The worker side of an audit's life: claim, heartbeat, results, failure, cancellation.

State changes that workers race on are single conditional statements
(``UPDATE ... WHERE <expected state> RETURNING``, ``INSERT ... ON CONFLICT DO
NOTHING``), so they are correct under concurrency on PostgreSQL and SQLite
without explicit locks. The caller owns the transaction and should commit
promptly: a claimed row stays locked until then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from audit.storage.accounts import insert_ignore
from audit.storage.audits import AuditNotFound, get_audit, load_audit
from audit.storage.events import append_event, result_sha256
from audit.storage.models import Audit, FindingRow, Result, utcnow
from audit.storage.reports import store_artifact, store_report


def _log(
    session: Session,
    audit: Audit | None,
    audit_id: str,
    action: str,
    actor: str,
    **extra: Any,
) -> None:
    """Append an audit's lifecycle entry (the project read from the row when not loaded)."""
    project = (
        audit.project
        if audit is not None
        else session.scalar(select(Audit.project).where(Audit.id == audit_id))
    )
    append_event(
        session=session,
        action=action,
        actor=actor,
        subject=f"audit/{audit_id}",
        project=project,
        audit_id=audit_id,
        **extra,
    )


def _max_attempts(value: int | None) -> int:
    if value is not None:
        return value
    from audit.settings import get_settings

    return get_settings().max_attempts


def claim_audit(
    *,
    session: Session,
    audit_id: str,
    worker: str,
    lease_seconds: float,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> Audit | None:
    """Take the audit for ``worker`` if it is queued, or running with an expired lease.

    One conditional ``UPDATE ... RETURNING``: of two workers claiming at once,
    exactly one gets the audit, the other None. Each claim counts one attempt
    and restarts progress; after ``max_attempts`` (default:
    ``Settings.max_attempts``) the audit is no longer claimable (see
    ``fail_stale_audits``). Commit promptly: the row stays locked until then.
    """
    now = now or utcnow()
    max_attempts = _max_attempts(max_attempts)
    stmt = (
        update(Audit)
        .where(
            Audit.id == audit_id,
            or_(
                Audit.status == "queued",
                and_(Audit.status == "running", Audit.lease_until < now),
            ),
            Audit.attempts < max_attempts,
            Audit.cancel_requested.is_(False),
        )
        .values(
            status="running",
            worker=worker,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=Audit.attempts + 1,
            # the first start stays: a re-claim after a lost worker is the same audit
            started_at=func.coalesce(Audit.started_at, now),
            progress=0.0,
            error=None,
        )
        .returning(Audit)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    audit = session.scalars(stmt).one_or_none()
    if audit is not None:
        _log(
            session, audit, audit_id, "audit.started", f"worker {worker}",
            detail={"attempt": audit.attempts},
        )  # fmt: skip
    return audit


def update_progress(
    *,
    session: Session,
    audit_id: str,
    progress: float,
    worker: str | None = None,
    lease_seconds: float | None = None,
    now: datetime | None = None,
) -> Audit | None:
    """Record progress (0..1) of a running audit and, with ``lease_seconds``, renew the lease.

    With ``worker`` the update applies only while that worker holds the audit.
    Returns the audit (check ``cancel_requested``), or None when it is no longer
    running for this worker: the worker should stop.
    """
    if not 0.0 <= progress <= 1.0 or math.isnan(progress):
        raise ValueError(f"progress: must be between 0 and 1, got {progress}")
    now = now or utcnow()
    conditions = [Audit.id == audit_id, Audit.status == "running"]
    if worker is not None:
        conditions.append(Audit.worker == worker)
    values: dict[str, Any] = {"progress": progress}
    if lease_seconds is not None:
        values["lease_until"] = now + timedelta(seconds=lease_seconds)
    stmt = (
        update(Audit)
        .where(*conditions)
        .values(**values)
        .returning(Audit)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    return session.scalars(stmt).one_or_none()


def renew_lease(
    *,
    session: Session,
    audit_id: str,
    worker: str | None,
    lease_seconds: float,
    now: datetime | None = None,
) -> bool:
    """Extend the lease of a running audit held by ``worker`` (any holder if None).

    Progress is left alone (the lease keeper renews, the engine reports progress).
    False when the audit is no longer running for this worker.
    """
    now = now or utcnow()
    conditions = [Audit.id == audit_id, Audit.status == "running"]
    if worker is not None:
        conditions.append(Audit.worker == worker)
    result = session.execute(
        update(Audit)
        .where(*conditions)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _finding_row(audit_id: str, index: int, finding: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(finding, dict) or "metric" not in finding or "status" not in finding:
        raise ValueError(f"results.findings[{index}]: needs at least 'metric' and 'status'")
    ci = finding.get("ci") or [None, None]

    def text(key: str) -> str | None:
        value = finding.get(key)
        return None if value is None else str(value)

    return {
        "audit_id": audit_id,
        "probe": str(finding.get("probe", "")),
        "attribute": text("attribute"),
        "group": text("group"),
        "metric": str(finding["metric"]),
        "value": finding.get("value"),
        "threshold": finding.get("threshold"),
        "status": str(finding["status"]),
        "p_value": finding.get("p_value"),
        "ci_low": ci[0] if len(ci) > 0 else None,
        "ci_high": ci[1] if len(ci) > 1 else None,
        "direction": text("direction"),
    }


def _check_finite(value: Any, path: str) -> None:
    """Refuse NaN/Infinity anywhere in the document: they are not JSON (PostgreSQL rejects them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: {value} is not valid JSON; write null for undefined values")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{path}[{i}]")


def store_results(
    *,
    session: Session,
    audit_id: str,
    results: dict[str, Any],
    reports: Mapping[str, bytes | str] | None = None,
    now: datetime | None = None,
    actor: str = "worker",
    artifacts: Mapping[str, bytes] | None = None,
) -> bool:
    """Store the results document, its findings, the verdict, the rendered ``reports``
    (format -> content, e.g. ``{"html": ...}``) and the files the probes produced
    (``artifacts``, name -> bytes), and mark the audit succeeded.

    All in the caller's transaction. Returns False and writes nothing when the
    audit already has results (a redelivered task) or was cancelled. A document
    over ``BIASAUDIT_MAX_RESULT_BYTES`` raises ``ResultTooLarge`` (an input error).
    """
    audit = load_audit(session=session, audit_id=audit_id)
    if audit is None:
        raise AuditNotFound(f"audit {audit_id!r} not found")
    if audit.status == "cancelled":
        return False
    from audit.storage.errors import check_result_size  # imports the engine's errors: lazily

    _check_finite(results, "results")
    check_result_size(results)
    verdict = results.get("verdict")
    if verdict not in ("pass", "fail", None):
        raise ValueError(f"results.verdict: must be 'pass' or 'fail', got {verdict!r}")
    findings = [_finding_row(audit_id, i, f) for i, f in enumerate(results.get("findings") or [])]
    now = now or utcnow()
    inserted = session.execute(
        insert_ignore(session, Result, index_elements=["audit_id"])
        .values(audit_id=audit_id, document=results, created_at=now)
        .returning(Result.id)
    ).scalar_one_or_none()
    if inserted is None:
        return False
    if findings:
        session.execute(insert(FindingRow), findings)
    for format, content in (reports or {}).items():
        store_report(session=session, audit_id=audit_id, format=format, content=content)
    for name, blob in (artifacts or {}).items():
        store_artifact(session=session, audit_id=audit_id, name=name, content=blob)
    values: dict[str, Any] = {
        "status": "succeeded",
        "verdict": verdict,
        "progress": 1.0,
        "finished_at": now,
        "lease_until": None,
        "error": None,
    }
    dataset_sha = (results.get("dataset") or {}).get("sha256")
    model_sha = (results.get("model") or {}).get("sha256")
    if audit.dataset_sha256 is None and dataset_sha:
        values["dataset_sha256"] = dataset_sha
    if audit.model_sha256 is None and model_sha:
        values["model_sha256"] = model_sha
    session.execute(
        update(Audit)
        .where(Audit.id == audit_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(audit)
    _log(
        session, audit, audit_id, "audit.finished", actor,
        result_sha256=result_sha256(results), detail={"verdict": verdict},
    )  # fmt: skip
    return True


def mark_failed(
    *,
    session: Session,
    audit_id: str,
    error: str,
    now: datetime | None = None,
    actor: str = "worker",
) -> bool:
    """Mark a queued or running audit failed with ``error``; False if it already finished."""
    now = now or utcnow()
    result = session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.status.in_(("queued", "running")))
        .values(status="failed", error=error, finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    _expire(session, audit_id)
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    if changed:
        _log(session, None, audit_id, "audit.failed", actor, detail={"error": error[:500]})
    return changed


def request_cancel(
    *,
    session: Session,
    project: str,
    audit_id: str,
    now: datetime | None = None,
    actor: str = "system",
) -> Audit | None:
    """Cancel a project's audit: a queued one at once, a running one at its next checkpoint.

    Returns the audit (unchanged when it had already finished), or None if not found.
    The request is logged ("audit.cancelled", by ``actor``) when it changed anything.
    """
    now = now or utcnow()
    queued = session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.project == project, Audit.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    running = session.execute(
        update(Audit)
        .where(
            Audit.id == audit_id,
            Audit.project == project,
            Audit.status == "running",
            Audit.cancel_requested.is_(False),
        )
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    _expire(session, audit_id)
    audit = get_audit(session=session, project=project, audit_id=audit_id)
    was = "queued" if queued.rowcount else "running" if running.rowcount else None  # type: ignore[attr-defined]
    if audit is not None and was is not None:
        _log(session, audit, audit_id, "audit.cancelled", actor, detail={"was": was})
    return audit


def mark_cancelled(
    *, session: Session, audit_id: str, now: datetime | None = None, actor: str = "worker"
) -> bool:
    """The worker acknowledges a cancel request: running -> cancelled."""
    now = now or utcnow()
    result = session.execute(
        update(Audit)
        .where(Audit.id == audit_id, Audit.status.in_(("queued", "running")))
        .values(status="cancelled", cancel_requested=True, finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    _expire(session, audit_id)
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    if changed:
        _log(session, None, audit_id, "audit.cancelled", actor, detail={"acknowledged": True})
    return changed


def fail_stale_audits(
    *, session: Session, max_attempts: int | None = None, now: datetime | None = None
) -> list[str]:
    """Fail running audits whose lease expired after their last allowed attempt.

    Their worker died ``max_attempts`` times; nobody can claim them any more.
    Returns the ids failed.
    """
    now = now or utcnow()
    max_attempts = _max_attempts(max_attempts)
    rows = session.execute(
        update(Audit)
        .where(
            Audit.status == "running",
            Audit.lease_until < now,
            Audit.attempts >= max_attempts,
        )
        .values(
            status="failed",
            finished_at=now,
            lease_until=None,
            error=f"worker lost: the audit did not finish in {max_attempts} attempt(s)",
        )
        .returning(Audit.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    ids = list(rows)
    for audit_id in ids:
        _expire(session, audit_id)
        _log(session, None, audit_id, "audit.failed", "reconciler", detail={"error": "worker lost"})
    return ids


def _expire(session: Session, audit_id: str) -> None:
    """Drop a stale in-session copy after a Core UPDATE so the next read sees the row."""
    cached = session.identity_map.get(session.identity_key(Audit, (audit_id,)))  # type: ignore[arg-type]
    if cached is not None:
        session.expire(cached)
