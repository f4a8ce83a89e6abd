"""What each dashboard page shows, built from storage as plain, formatted values.

Routes (:mod:`audit.ui.routes`) stay thin: they check who is asking and hand
the database session here. Every query takes the viewer's project, so an id
from another tenant is simply not found (404).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from audit.storage.dashboard import REVIEW_STATES, AuditFilters, list_audit_page, review_states
from audit.storage.models import AUDIT_STATUSES, VERDICTS, Audit, plausible_id
from audit.storage.repo import get_audit, get_results, get_schedule, list_reviews
from audit.ui.security import UiError, Viewer

PAGE_SIZE = 20
MAX_PAGE_NUMBER = 10_000
REVIEW_LABEL = {"awaiting": "awaiting review", "approved": "approved", "rejected": "rejected"}
FILTER_KEYS = ("status", "verdict", "review", "model", "schedule", "from", "to")
MSG_CHOICE = "{field}: {value!r} is not one of {allowed}"
MSG_DATE = "{field}: {value!r} is not a date; use YYYY-MM-DD"
MSG_MODEL = "model: {value!r} is not a model fingerprint; give 4 to 64 hex digits of its SHA-256"


def when(value: datetime | str | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM UTC`` (— when missing; text is shown as it is)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def not_found(what: str, ident: str) -> UiError:
    """The 404 page for an id not found in the viewer's project."""
    return UiError(404, f"No {what} {ident[:100]!r} in this project.")


def _choice(params: Mapping[str, str], field: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(field) or None
    if value is not None and value not in allowed:
        raise UiError(422, MSG_CHOICE.format(field=field, value=value, allowed=", ".join(allowed)))
    return value


def _day(params: Mapping[str, str], field: str) -> date | None:
    value = params.get(field) or None
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UiError(422, MSG_DATE.format(field=field, value=value[:40])) from None


def parse_filters(params: Mapping[str, str]) -> tuple[AuditFilters, int]:
    """The list's filters and page number from the query string (422 naming a bad field)."""
    model = (params.get("model") or "").strip().lower() or None
    if model is not None and not (
        4 <= len(model) <= 64 and all(c in "0123456789abcdef" for c in model)
    ):
        raise UiError(422, MSG_MODEL.format(value=model[:80]))
    schedule = params.get("schedule") or None
    if schedule is not None and not plausible_id(schedule):
        raise UiError(422, f"schedule: {schedule[:40]!r} is not a schedule id")
    start, end = _day(params, "from"), _day(params, "to")
    raw_page = params.get("page") or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= MAX_PAGE_NUMBER:
        raise UiError(422, f"page: {raw_page[:20]!r} is not a page number (1-{MAX_PAGE_NUMBER})")
    filters = AuditFilters(
        status=_choice(params, "status", AUDIT_STATUSES),
        verdict=_choice(params, "verdict", VERDICTS),
        review=_choice(params, "review", REVIEW_STATES),
        model=model,
        schedule_id=schedule,
        created_after=datetime.combine(start, time(), UTC) if start else None,
        created_before=datetime.combine(end, time(), UTC) + timedelta(days=1) if end else None,
    )
    return filters, int(raw_page)


def audit_row(audit: Audit, review: str | None) -> dict[str, Any]:
    """One audit as a list row: name, status, verdict and review badges, model, dates."""
    return {
        "id": audit.id,
        "name": audit.name,
        "domain": audit.domain,
        "status": audit.status,
        "verdict": audit.verdict or "",
        "review": review or "",
        "review_label": REVIEW_LABEL.get(review or "", ""),
        "model": audit.model_sha256 or "",
        "schedule_id": audit.schedule_id or "",
        "created": when(audit.created_at),
        "finished": when(audit.finished_at),
    }


def audits_page(session: Session, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    """The audits list: filters, one page of rows with badges, and links to other pages."""
    filters, page = parse_filters(params)
    rows, total = list_audit_page(
        session=session,
        project=viewer.user.project,
        filters=filters,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    states = review_states(session=session, audits=rows)
    kept = {k: params[k] for k in FILTER_KEYS if params.get(k)}
    pages = max(1, -(-total // PAGE_SIZE))

    def link(n: int) -> str:
        return "/ui/?" + urlencode({**kept, "page": str(n)})

    return {
        "rows": [audit_row(a, states.get(a.id)) for a in rows],
        "total": total,
        "page": page,
        "pages": pages,
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
        "f": {k: params.get(k, "") for k in FILTER_KEYS},
        "statuses": AUDIT_STATUSES,
        "verdicts": VERDICTS,
        "reviews": [(s, REVIEW_LABEL[s]) for s in REVIEW_STATES],
        "filtered": bool(kept),
    }


def load_audit(session: Session, viewer: Viewer, audit_id: str) -> Audit:
    """The viewer's project's audit, or the 404 page (also for other tenants' ids)."""
    audit = None
    if plausible_id(audit_id):
        audit = get_audit(session=session, project=viewer.user.project, audit_id=audit_id)
    if audit is None:
        raise not_found("audit", audit_id)
    return audit


def summary_sentence(header: Mapping[str, Any], findings: Sequence[Mapping[str, Any]]) -> str:
    """One plain sentence saying what the verdict means, naming the worst failed check."""
    total, failed = header.get("n_findings", 0), header.get("n_fail", 0)
    unsure = header.get("n_insufficient", 0)
    if not total:
        return "No policy checks were recorded for this audit, so it has no pass or fail basis."
    if failed:
        worst = next((f for f in findings if f.get("status_class") == "fail"), None)
        where = ""
        if worst is not None:
            metric = str(worst.get("metric") or "")
            if metric[1:2].islower():  # "Impact ratio" -> "impact ratio"; "TPR" stays
                metric = metric[:1].lower() + metric[1:]
            where = (
                f" The first is {metric} for {worst.get('attribute')} = "
                f"{worst.get('group')}: {worst.get('value')} against a threshold of "
                f"{worst.get('threshold')}."
            )
        return (
            f"This audit fails the policy: {failed} of {total} checks failed, "
            f"so the model treats at least one group measurably worse than allowed.{where}"
        )
    tail = f" ({unsure} could not be decided for lack of data)" if unsure else ""
    return f"This audit passes the policy: none of its {total} checks failed{tail}."


def _reviews(session: Session, viewer: Viewer, audit: Audit) -> list[dict[str, str]]:
    rows = list_reviews(session=session, project=viewer.user.project, audit_id=audit.id)
    return [
        {
            "decision": r.decision,
            "label": REVIEW_LABEL["approved" if r.decision == "approve" else "rejected"],
            "state": "approved" if r.decision == "approve" else "rejected",
            "reviewer": r.reviewer or "—",
            "comment": r.comment or "",
            "at": when(r.created_at),
        }
        for r in rows
    ]


def audit_page(session: Session, viewer: Viewer, audit_id: str) -> dict[str, Any]:
    """An audit: verdict and summary first, failed checks, sections, LL144, provenance,
    reviews and (for reviewers of succeeded audits) the review form."""
    audit = load_audit(session, viewer, audit_id)
    state = review_states(session=session, audits=[audit]).get(audit.id)
    context: dict[str, Any] = {
        "audit": audit_row(audit, state),
        "error": audit.error or "",
        "progress": f"{audit.progress:.0%}",
        "reviews": _reviews(session, viewer, audit),
        "can_review": viewer.can_review and audit.status == "succeeded",
        "report": None,
    }
    if audit.status == "succeeded":
        results = get_results(session=session, project=viewer.user.project, audit_id=audit.id)
        if results is not None:
            from audit.reports.html import build_context

            report = build_context(results)
            findings = report["findings"]
            report["failing"] = [f for f in findings if f.get("status_class") != "pass"]
            report["passing"] = [f for f in findings if f.get("status_class") == "pass"]
            context["report"] = report
            # the report's own sentence when it has one: page and report say the same
            context["summary"] = report.get("summary") or summary_sentence(report["h"], findings)
    if audit.schedule_id:
        schedule = get_schedule(
            session=session, project=viewer.user.project, schedule_id=audit.schedule_id
        )
        context["schedule_name"] = schedule.name if schedule else ""
    return context
