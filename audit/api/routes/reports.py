"""The audit report route: HTML (streamed as stored), PDF and CSV of a succeeded audit.

The HTML report is rendered once when the results are stored and streamed from
the database piece by piece. A review drops the stored report
(``audit.storage.reviews.mark_reports_stale``); the next read renders it again with
its sign-off section and stores it, so reviewed reports stream like the others.
The PDF is the same report laid out for print (WeasyPrint, :mod:`audit.reports.pdf`):
seconds of CPU, so it is laid out on its first read from the stored results and
reviews (one at a time per API process), stored the same way and streamed after;
a review drops it with the HTML report.
The CSV is one formula-safe row per (probe, attribute, group, metric).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from audit.api.deps import ReaderToken, SessionDep
from audit.api.errors import ApiError
from audit.api.routes.audits import MSG_NOT_SUCCEEDED, _load, _results
from audit.api.schemas import ErrorPublic
from audit.settings import get_settings
from audit.storage.repo import get_results
from audit.storage.reports import (
    StoredReport,
    get_report,
    iter_report,
    report_reviews,
    store_report,
)

router = APIRouter(prefix="/v1/audits", tags=["audits"])
_PDF_RENDER = threading.Lock()
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
MSG_PDF_TOO_LARGE = (
    "format: this report is larger than the {limit} bytes of HTML the API lays out as PDF "
    "(BIASAUDIT_PDF_MAX_HTML_BYTES); read it with format=html or format=csv, or run "
    "'biasaudit report ID --format pdf' on the server"
)


def _accepts_gzip(header: str | None) -> bool:
    """True when an ``Accept-Encoding`` header allows gzip (``q=0`` refuses it)."""
    for part in (header or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower().removeprefix("q=").strip() if params else "1"
            try:
                return float(q or "1") > 0
            except ValueError:
                return False
    return False


_RENDER = threading.Lock()  # one on-demand HTML rendering at a time per API process


def _stored_report(
    project: str,
    audit_id: str,
    *,
    format: str = "html",
    render: Callable[[dict[str, Any], list[dict[str, Any]]], bytes | str] | None = None,
) -> StoredReport:
    """The stored report in ``format``; rendered (with the reviews) and stored when there
    is none: results stored before reports were, a report dropped by a review, or a PDF
    never asked for yet. ``render(results, reviews)`` makes it (default: the HTML report).

    One rendering at a time per API process and format; a reader that waited for the lock
    finds the report the other one stored. A review that lands while a report renders
    drops nothing that is not yet stored, so a report is stored only when the reviews
    it was rendered with are still the audit's reviews."""
    from audit.storage.db import session_scope

    url = get_settings().db_url
    with session_scope(url) as session:
        stored = get_report(session=session, project=project, audit_id=audit_id, format=format)
    if stored is not None:
        return stored
    with _PDF_RENDER if format == "pdf" else _RENDER:
        with session_scope(url) as session:
            stored = get_report(session=session, project=project, audit_id=audit_id, format=format)
            if stored is None:
                results = get_results(session=session, project=project, audit_id=audit_id)
                if results is None:
                    raise ApiError(409, MSG_NOT_SUCCEEDED.format(id=audit_id, status="missing"))
                reviews = report_reviews(session=session, project=project, audit_id=audit_id)
                content = (render or _render_html)(results, reviews)
                del results
                if reviews == report_reviews(session=session, project=project, audit_id=audit_id):
                    store_report(session=session, audit_id=audit_id, format=format, content=content)
                del content
        with session_scope(url) as session:
            stored = get_report(session=session, project=project, audit_id=audit_id, format=format)
    if stored is None:  # reviewed while rendering: the next read renders with the review
        return _stored_report(project, audit_id, format=format, render=render)
    return stored


def _render_html(results: dict[str, Any], reviews: list[dict[str, Any]]) -> str:
    from audit.reports.html import render_html

    return render_html(results, reviews=reviews or None)


def _render_pdf(results: dict[str, Any], reviews: list[dict[str, Any]]) -> bytes:
    """The PDF (WeasyPrint: seconds of CPU), refused when its HTML is over the limit."""
    from audit.reports.pdf import html_to_pdf, print_html

    html = print_html(results, reviews=reviews)
    limit = get_settings().pdf_max_html_bytes
    if len(html.encode("utf-8")) > limit:
        raise ApiError(422, MSG_PDF_TOO_LARGE.format(limit=limit), field="format")
    return html_to_pdf(html)


def _attachment(audit_id: str, ext: str, *, inline: bool = False) -> dict[str, str]:
    kind = "inline" if inline else "attachment"
    return {"Content-Disposition": f'{kind}; filename="audit-{audit_id}.{ext}"'}


@router.get(
    "/{audit_id}/report",
    summary="The audit report: HTML, or the same report as PDF (?format=pdf), or CSV (?format=csv)",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}, "application/pdf": {}, "text/csv": {}}},
        409: {"model": ErrorPublic, "description": "the audit has not succeeded"},
        422: {"model": ErrorPublic, "description": "a PDF of a report over the size limit"},
    },
)
def read_report(
    audit_id: str,
    token: ReaderToken,
    session: SessionDep,
    request: Request,
    format: Literal["html", "pdf", "csv"] = "html",
) -> Response:
    """The HTML report is rendered once, when the results are stored, and streamed from
    the database piece by piece (gzip as stored when the client accepts it), so large
    reports read concurrently cost one piece of memory each. A review drops the stored
    report; it is rendered again with the sign-off section on the next read."""
    if format == "csv":
        from audit.reports.csv_report import render_csv

        body = render_csv(_results(session, token.project, audit_id)).encode("utf-8")
        return Response(body, media_type=CSV_MEDIA_TYPE, headers=_attachment(audit_id, "csv"))
    audit = _load(session, token.project, audit_id)
    if audit.status != "succeeded":
        raise ApiError(409, MSG_NOT_SUCCEEDED.format(id=audit_id, status=audit.status))
    session.close()  # the stream opens a short session per piece
    if format == "pdf":
        stored = _stored_report(token.project, audit_id, format="pdf", render=_render_pdf)
    else:
        stored = _stored_report(token.project, audit_id)
    gzip = _accepts_gzip(request.headers.get("accept-encoding")) and stored.encoding == "gzip"
    headers = {
        "Content-Length": str(stored.stored_bytes if gzip else stored.size_bytes),
        "ETag": f'"{stored.sha256}"',
        "Vary": "Accept-Encoding",
    }
    if gzip:
        headers["Content-Encoding"] = "gzip"
    if format == "pdf":
        headers.update(_attachment(audit_id, "pdf", inline=True))
    return StreamingResponse(
        iter_report(stored, url=get_settings().db_url, decompress=not gzip),
        media_type=stored.media_type,
        headers=headers,
    )
