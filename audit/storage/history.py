"""History and comparison over stored audits (tenant-scoped): the data ``diff`` and the
history routes need, from :mod:`audit.compare`'s pure functions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.compare import compare_results, impact_ratio_points
from audit.storage.models import Audit, Result
from audit.storage.reviews import review_states

MAX_HISTORY = 1000


class NotComparable(ValueError):
    """One of the audits has no results (it has not succeeded)."""


def audit_summary(audit: Audit) -> dict[str, Any]:
    """The identifying fields of an audit shown beside a comparison or a history point."""
    return {
        "id": audit.id,
        "name": audit.name,
        "status": audit.status,
        "verdict": audit.verdict,
        "created_at": audit.created_at,
        "model_sha256": audit.model_sha256,
        "dataset_sha256": audit.dataset_sha256,
        "schedule_id": audit.schedule_id,
    }


def _document(session: Session, audit: Audit) -> dict[str, Any]:
    document = session.scalar(select(Result.document).where(Result.audit_id == audit.id))
    if document is None:
        raise NotComparable(f"audit {audit.id} is {audit.status}: it has no results to compare")
    return document


def compare_audits(session: Session, a: Audit, b: Audit) -> dict[str, Any]:
    """The comparison of two audits the caller loaded (and checked the tenant of)."""
    result = compare_results(_document(session, a), _document(session, b))
    return {"a": audit_summary(a), "b": audit_summary(b), **result}


def history(
    session: Session,
    *,
    project: str,
    model_sha256: str | None = None,
    schedule_id: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """The latest ``limit`` succeeded runs of one model fingerprint or one schedule, oldest
    first, with each group's impact ratio (and CI) per run, and the same as one series per
    (probe, attribute, group): the trend."""
    if (model_sha256 is None) == (schedule_id is None):
        raise ValueError("history: give exactly one of model_sha256 or schedule_id")
    if not 1 <= limit <= MAX_HISTORY:
        raise ValueError(f"limit: must be between 1 and {MAX_HISTORY}, got {limit}")
    condition = (
        Audit.model_sha256 == model_sha256
        if model_sha256 is not None
        else Audit.schedule_id == schedule_id
    )
    rows = list(
        session.execute(
            select(Audit, Result.document)
            .join(Result, Result.audit_id == Audit.id)
            .where(Audit.project == project, Audit.status == "succeeded", condition)
            .order_by(Audit.created_at.desc(), Audit.id.desc())
            .limit(limit)
        )
    )
    rows.reverse()
    states = review_states(session, [audit.id for audit, _ in rows])
    runs: list[dict[str, Any]] = []
    series: dict[tuple[Any, ...], dict[str, Any]] = {}
    for audit, document in rows:
        points = impact_ratio_points(document)
        runs.append({**audit_summary(audit), "review_state": states[audit.id], "groups": points})
        for p in points:
            key = (p["probe"], p["attribute"], p["group"])
            line = series.setdefault(
                key,
                {
                    "probe": p["probe"],
                    "attribute": p["attribute"],
                    "group": p["group"],
                    "points": [],
                },
            )
            line["points"].append(
                {
                    "audit_id": audit.id,
                    "created_at": audit.created_at,
                    "impact_ratio": p["impact_ratio"],
                    "ci": p["ci"],
                }
            )
    return {
        "model_sha256": model_sha256,
        "schedule_id": schedule_id,
        "runs": runs,
        "series": list(series.values()),
    }
