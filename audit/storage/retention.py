"""Retention: delete uploaded datasets and models that nothing has used for N days.

With ``BIASAUDIT_DATASET_RETENTION_DAYS`` (``BIASAUDIT_MODEL_RETENTION_DAYS`` for
models) set, ``biasaudit beat`` runs ``biasaudit.apply_retention`` every
``BIASAUDIT_RETENTION_INTERVAL`` seconds. An item is expired when it was uploaded
more than N days ago and no audit of its project submitted in the last N days names
it (:func:`audit.storage.inventory.spec_refs`). Each expired item goes through
:func:`audit.storage.erasure.erase`, the path of ``DELETE``, as actor ``retention``,
one transaction each: one still named by a queued or running audit or an enabled
schedule is kept (and tried again next run); one the store fails to delete stays live.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.storage.db import session_scope
from audit.storage.erasure import InUse, erase
from audit.storage.inventory import DATASET, MODEL, TABLES, usage
from audit.storage.models import utcnow

log = logging.getLogger("biasaudit.retention")
ACTOR = "retention"


def retention_days(settings: Any) -> dict[str, int]:
    """The retention period of each kind that has one (days)."""
    days = {DATASET: settings.dataset_retention_days, MODEL: settings.model_retention_days}
    return {kind: int(n) for kind, n in days.items() if n is not None}


def expired(*, session: Session, kind: str, days: int, now: datetime) -> list[tuple[str, str]]:
    """(project, id) of the live items of ``kind`` uploaded before ``now - days`` that no
    audit submitted since then names, sorted."""
    since = now - timedelta(days=days)
    table = TABLES[kind]
    old: dict[str, list[str]] = defaultdict(list)
    for project, item_id in session.execute(
        select(table.project, table.id).where(table.deleted_at.is_(None), table.created_at < since)
    ):
        old[project].append(item_id)
    found = []
    for project, ids in old.items():
        used = usage(session=session, project=project, kind=kind, ids=ids, since=since)
        found += [(project, item_id) for item_id in ids if item_id not in used]
    return sorted(found)


def apply_retention(*, settings: Any, now: datetime | None = None) -> list[str]:
    """Delete every expired dataset and model (see the module doc); ``kind/id`` of each
    deleted. Nothing happens without a retention setting."""
    now = now or utcnow()
    deleted: list[str] = []
    for kind, days in retention_days(settings).items():
        with session_scope(settings.db_url) as session:
            candidates = expired(session=session, kind=kind, days=days, now=now)
        for project, item_id in candidates:
            if _erase_one(settings, kind, project, item_id, days):
                deleted.append(f"{kind}/{item_id}")
    if deleted:
        log.info("retention: deleted %d item(s): %s", len(deleted), ", ".join(deleted))
    return deleted


def _erase_one(settings: Any, kind: str, project: str, item_id: str, days: int) -> bool:
    reason = f"retention: unused for {days} days"
    try:
        with session_scope(settings.db_url) as session:
            row = erase(
                session=session,
                settings=settings,
                project=project,
                kind=kind,
                item_id=item_id,
                actor=ACTOR,
                reason=reason,
            )
    except InUse as exc:
        log.info("retention: %s/%s kept: %s", kind, item_id, exc)
        return False
    except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
        log.warning("retention: %s/%s not deleted: %s", kind, item_id, type(exc).__name__)
        return False
    return row is not None
