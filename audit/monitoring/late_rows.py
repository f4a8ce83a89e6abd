"""Late rows: decisions that reached the source after their window was audited.

A ``dataset.source`` run reads the rows whose time falls in its window. A row
written later with a time inside an earlier window is never read by the next
run (its window starts where the previous one ended). Two remedies, both
documented in docs/monitoring.md:

- ``settle_seconds`` on the schedule: each window ends that long before the
  due time, so rows that arrive up to that late are still read;
- this re-check: when a scheduled run succeeds, the previous succeeded run's
  query is counted again over *its* window. If it now returns more rows than
  that run audited, an alert of kind ``late_rows`` is raised (and delivered
  like the others), naming the window and both counts, so the window can be
  audited again (a one-off audit with ``dataset.window_start``/``window_end``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.settings import get_settings
from audit.storage.alert_models import Alert
from audit.storage.alerts import new_alert
from audit.storage.models import Audit, Result, utcnow

log = logging.getLogger("biasaudit.alerts")
KIND = "late_rows"


def _source_of(session: Session, audit_id: str) -> dict[str, Any] | None:
    document = session.scalar(select(Result.document).where(Result.audit_id == audit_id))
    manifest = (document or {}).get("manifest") or {}
    source = manifest.get("dataset_source")
    return source if isinstance(source, dict) else None


def _previous_run(session: Session, audit: Audit) -> Audit | None:
    return session.scalars(
        select(Audit)
        .where(
            Audit.schedule_id == audit.schedule_id,
            Audit.status == "succeeded",
            Audit.id != audit.id,
            Audit.created_at <= audit.created_at,
        )
        .order_by(Audit.created_at.desc(), Audit.id.desc())
        .limit(1)
    ).first()


def check_late_rows(*, session: Session, audit_id: str) -> Alert | None:
    """A ``late_rows`` alert if the previous run's window now holds more rows (else None).

    Raised once per audit; a failing count is logged, never raised.
    """
    audit = session.get(Audit, audit_id)
    if audit is None or audit.schedule_id is None or audit.status != "succeeded":
        return None
    if session.scalar(select(Alert.id).where(Alert.audit_id == audit_id, Alert.kind == KIND)):
        return None
    previous = _previous_run(session, audit)
    then = _source_of(session, previous.id) if previous is not None else None
    if previous is None or then is None or then.get("window_end") is None:
        return None
    dataset = {**(previous.spec.get("dataset") or {}), "query": then["query"]}
    url = get_settings().source_url(str(then["source"]))
    if url is None:
        return None
    from audit.engine.dbsource import count_rows

    try:
        now_rows = count_rows(dataset, url)
    except Exception as exc:  # noqa: BLE001 - a check, never a failure of the run
        log.warning("late-rows check of audit %s failed: %s", audit_id, type(exc).__name__)
        return None
    if now_rows <= int(then["rows"]):
        return None
    details = {
        "against": "previous",
        "against_audit_id": previous.id,
        "window_start": then["window_start"],
        "window_end": then["window_end"],
        "rows_then": int(then["rows"]),
        "rows_now": now_rows,
        "late": now_rows - int(then["rows"]),
    }
    alert = new_alert(session=session, audit=audit, kind=KIND, details=details, now=utcnow())
    session.flush()
    return alert
