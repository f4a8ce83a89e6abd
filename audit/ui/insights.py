"""Compare two audits and follow a model's or a schedule's history (page contexts).

Both read stored results only. The comparison lines up every policy check the
two audits share (same probe, attribute, group and metric) with both values,
the change and whether the two 95% CIs are separate; the significance test of
the service's compare API is used instead when it is available
(:func:`audit.ui.trail.compare_significance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.reports.svg import fmt_ci, fmt_p, fmt_rate, fmt_signed, num
from audit.storage.dashboard import audit_runs
from audit.storage.models import Audit, Schedule, plausible_id
from audit.storage.repo import get_results
from audit.ui.charts import Point, Series, trend_chart
from audit.ui.security import UiError, Viewer
from audit.ui.trail import compare_significance
from audit.ui.views import load_audit, when

TREND_METRIC = "impact_ratio"
MAX_SERIES = 8
RECENT = 50

Key = tuple[str, str, str, str]


def _key(f: Mapping[str, Any]) -> Key:
    return (str(f.get("probe")), str(f.get("attribute")), str(f.get("group")), str(f.get("metric")))


def _ci(f: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    ci = (f or {}).get("ci") or [None, None]
    return (num(ci[0]), num(ci[1])) if len(ci) == 2 else (None, None)


def _separate(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    (alo, ahi), (blo, bhi) = _ci(a), _ci(b)
    if None in (alo, ahi, blo, bhi):
        return "—"
    assert alo is not None and ahi is not None and blo is not None and bhi is not None
    return "yes" if ahi < blo or bhi < alo else "no"


def recent_succeeded(session: Session, project: str) -> list[dict[str, str]]:
    """The project's latest succeeded audits, for the pickers."""
    rows = session.scalars(
        select(Audit)
        .where(Audit.project == project, Audit.status == "succeeded")
        .order_by(Audit.created_at.desc(), Audit.id.desc())
        .limit(RECENT)
    )
    return [{"id": a.id, "label": f"{a.name} · {when(a.created_at)} · {a.id[:8]}"} for a in rows]


def _document(session: Session, viewer: Viewer, audit_id: str) -> tuple[Audit, dict[str, Any]]:
    audit = load_audit(session, viewer, audit_id)
    results = get_results(session=session, project=viewer.user.project, audit_id=audit.id)
    if results is None:
        raise UiError(409, f"audit {audit.id} has no results yet ({audit.status}).")
    return audit, results


def _checks(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in document.get("findings") or [] if isinstance(f, Mapping)]


def _tests(significance: Mapping[str, Any] | None) -> dict[Key, Mapping[str, Any]]:
    """The significance test of each shared metric, by (probe, attribute, group, metric)."""
    rows = (significance or {}).get("metrics") or []
    return {_key(r): r for r in rows if isinstance(r, Mapping)}


def _compare_row(f: Mapping[str, Any], g: Mapping[str, Any], test: Any) -> dict[str, Any]:
    va, vb = num(f.get("value")), num(g.get("value"))
    significant = "—"
    if isinstance(test, Mapping) and test.get("significant") is not None:
        significant = "yes" if test.get("significant") else "no"
    return {
        "probe": f.get("probe"),
        "attribute": f.get("attribute"),
        "group": f.get("group"),
        "metric": f.get("metric"),
        "a": fmt_rate(va),
        "a_ci": fmt_ci(f.get("ci")),
        "b": fmt_rate(vb),
        "b_ci": fmt_ci(g.get("ci")),
        "change": fmt_signed(vb - va) if va is not None and vb is not None else "—",
        "status_a": str(f.get("status")),
        "status_b": str(g.get("status")),
        "separate": _separate(f, g),
        "significant": significant,
        "p_value": fmt_p(test.get("p_value")) if isinstance(test, Mapping) else "—",
        "moved": f.get("status") != g.get("status"),
    }


def compare_page(session: Session, viewer: Viewer, a: str, b: str) -> dict[str, Any]:
    """Two audits' shared checks side by side (or the pickers when one is missing)."""
    context: dict[str, Any] = {"choices": recent_succeeded(session, viewer.user.project)}
    context.update(a=a, b=b, rows=None)
    if not a or not b:
        return context
    audit_a, doc_a = _document(session, viewer, a)
    audit_b, doc_b = _document(session, viewer, b)
    significance = compare_significance(doc_a, doc_b)
    tests = _tests(significance)
    found_a, by_b = _checks(doc_a), {_key(g): g for g in _checks(doc_b)}
    rows = [_compare_row(f, by_b[_key(f)], tests.get(_key(f))) for f in found_a if _key(f) in by_b]
    mark = "significant" if significance is not None else "separate"
    rows.sort(key=lambda r: (not r["moved"], r[mark] != "yes"))
    context.update(
        audit_a={"id": audit_a.id, "name": audit_a.name, "verdict": audit_a.verdict or ""},
        audit_b={"id": audit_b.id, "name": audit_b.name, "verdict": audit_b.verdict or ""},
        rows=rows,
        only_a=len(found_a) - len(rows),
        only_b=len(by_b) - len(rows),
        significance=significance,
    )
    return context


def _choices(session: Session, project: str) -> dict[str, Any]:
    models = session.execute(
        select(Audit.model_sha256, func.count(), func.max(Audit.name))
        .where(Audit.project == project, Audit.model_sha256.is_not(None))
        .group_by(Audit.model_sha256)
        .order_by(func.max(Audit.created_at).desc())
        .limit(RECENT)
    ).all()
    schedules = session.scalars(
        select(Schedule).where(Schedule.project == project).order_by(Schedule.name)
    ).all()
    return {
        "models": [{"sha256": m, "runs": n, "name": name} for m, n, name in models],
        "schedules": [{"id": s.id, "name": s.name} for s in schedules],
    }


def _trend(runs: list[tuple[Audit, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One chart per attribute: each group's impact ratio across the runs."""
    per_attr: dict[str, dict[str, list[Point]]] = {}
    for i, (_, doc) in enumerate(runs):
        for f in doc.get("findings") or []:
            if not isinstance(f, Mapping) or f.get("metric") != TREND_METRIC:
                continue
            groups = per_attr.setdefault(str(f.get("attribute")), {})
            points = groups.setdefault(str(f.get("group")), [Point(None)] * len(runs))
            lo, hi = _ci(f)
            points[i] = Point(num(f.get("value")), lo, hi)
    labels = [when(a.created_at)[5:16] for a, _ in runs]
    charts = []
    for attribute, groups in sorted(per_attr.items()):
        ordered = sorted(groups.items(), key=lambda kv: (kv[1][-1].value is None, kv[1][-1].value))
        series = [Series(g, pts) for g, pts in ordered[:MAX_SERIES]]
        title = f"Impact ratio by {attribute} over {len(runs)} runs"
        charts.append(
            {
                "attribute": attribute,
                "svg": trend_chart(series, labels, title=title),
                "omitted": max(0, len(ordered) - MAX_SERIES),
            }
        )
    return charts


def history_page(session: Session, viewer: Viewer, model: str, schedule: str) -> dict[str, Any]:
    """Runs of one model fingerprint or one schedule with trend charts (or the pickers)."""
    project = viewer.user.project
    context: dict[str, Any] = {"model": model, "schedule": schedule, "runs": None}
    context.update(_choices(session, project))
    if not model and not schedule:
        return context
    if model and not (len(model) == 64 and all(c in "0123456789abcdef" for c in model)):
        raise UiError(422, f"model: {model[:80]!r} is not a model SHA-256 (64 hex digits)")
    if schedule and not plausible_id(schedule):
        raise UiError(422, f"schedule: {schedule[:40]!r} is not a schedule id")
    runs = audit_runs(
        session=session,
        project=project,
        model_sha256=model or None,
        schedule_id=None if model else schedule,
    )
    context["runs"] = [
        {"id": a.id, "name": a.name, "verdict": a.verdict or "", "created": when(a.created_at)}
        for a, _ in reversed(runs)
    ]
    context["charts"] = _trend(runs)
    return context
