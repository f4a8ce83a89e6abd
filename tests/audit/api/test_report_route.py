"""GET /v1/audits/{id}/report: the stored report streamed (rendered again only with reviews);
PDF and CSV from the stored results."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from audit.api.routes.reports import _accepts_gzip
from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Report
from audit.storage.repo import store_results
from audit.storage.reports import store_report
from tests.audit.api.helpers import auth, claim, finish_audit, spec_for
from tests.pdf_tools import pdf_text


def _submit(client: TestClient, token: str, dataset_id: str) -> str:
    response = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _reports(settings: Settings) -> int:
    with db.session_scope(settings.db_url) as session:
        return int(session.scalar(select(func.count()).select_from(Report)) or 0)


def _formats(settings: Settings, audit_id: str) -> list[str]:
    with db.session_scope(settings.db_url) as session:
        rows = session.scalars(select(Report.format).where(Report.audit_id == audit_id))
        return sorted(rows)


def test_stored_report_is_streamed_as_stored(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    audit_id = _submit(client, token, dataset_id)
    claim(api_settings.db_url, audit_id)
    stored = "<!DOCTYPE html><title>rendered once, by the worker</title>" + "é" * 1000
    with db.session_scope(api_settings.db_url) as session:
        store_report(session=session, audit_id=audit_id, format="html", content=stored)
    with db.session_scope(api_settings.db_url) as session:
        assert store_results(session=session, audit_id=audit_id, results={"verdict": "pass"})
    url = f"/v1/audits/{audit_id}/report"
    plain = client.get(url, headers={**auth(token), "Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.text == stored
    assert plain.headers["content-type"] == "text/html; charset=utf-8"
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(stored.encode())
    assert plain.headers["vary"] == "Accept-Encoding" and plain.headers["etag"].startswith('"')
    # a client that accepts gzip gets the stored bytes as they are
    raw = client.get(url, headers={**auth(token), "Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.text == stored
    with client.stream("GET", url, headers={**auth(token), "Accept-Encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
    assert gzip.decompress(body).decode() == stored
    assert int(r.headers["content-length"]) == len(body) < len(stored.encode())


def test_results_stored_without_a_report_are_rendered_once_then_streamed(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("reviewer")
    audit_id = _submit(client, make_token("submitter"), dataset_id)
    results = finish_audit(api_settings.db_url, audit_id)  # results only, as before reports
    assert _reports(api_settings) == 0
    first = client.get(f"/v1/audits/{audit_id}/report", headers=auth(token))
    assert first.status_code == 200 and audit_id in first.text
    assert results["verdict"].upper() in first.text
    assert _reports(api_settings) == 1  # stored: later reads stream it
    again = client.get(
        f"/v1/audits/{audit_id}/report", headers={**auth(token), "Accept-Encoding": "identity"}
    )
    assert again.text == first.text and _reports(api_settings) == 1


@pytest.mark.slow
def test_reviews_appear_in_the_html_and_pdf_reports(
    client: TestClient,
    make_token: Callable[..., str],
    dataset_id: str,
    api_settings: Settings,
    tmp_path: Path,
) -> None:
    reviewer = make_token("reviewer")
    audit_id = _submit(client, make_token("submitter"), dataset_id)
    results = finish_audit(api_settings.db_url, audit_id)
    url = f"/v1/audits/{audit_id}/report"
    before = client.get(url, headers=auth(reviewer)).text
    assert 'id="signoff"' not in before  # the stored report: rendered before any review
    pdf = client.get(url, params={"format": "pdf"}, headers=auth(reviewer))
    assert "awaiting review" in pdf_text(pdf.content, tmp_path)
    # laid out once (seconds of CPU), stored, then streamed like the HTML report
    assert _formats(api_settings, audit_id) == ["html", "pdf"]
    with db.session_scope(api_settings.db_url) as session:
        session.execute(update(Report).where(Report.format == "pdf").values(sha256="f" * 64))
    again = client.get(url, params={"format": "pdf"}, headers=auth(reviewer))
    assert again.content == pdf.content and again.headers["etag"] == f'"{"f" * 64}"'
    review = client.post(
        f"/v1/audits/{audit_id}/reviews",
        json={"decision": "approve", "comment": "checked by hand"},
        headers=auth(reviewer),
    )
    assert review.status_code == 201, review.text
    assert _formats(api_settings, audit_id) == []  # both dropped: rendered with the review
    name = review.json().get("reviewer") or "token"
    html = client.get(url, headers=auth(reviewer)).text
    signoff = html[html.index('id="signoff"') :]
    assert ">approved<" in signoff and "checked by hand" in signoff and name in signoff
    pdf = client.get(url, params={"format": "pdf"}, headers=auth(reviewer))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'inline; filename="audit-{audit_id}.pdf"'
    text = " ".join(pdf_text(pdf.content, tmp_path).split())
    assert "Review state: approved" in text and "checked by hand" in text and name in text
    assert results["verdict"].upper() in text
    csv = client.get(url, params={"format": "csv"}, headers=auth(reviewer))
    assert csv.headers["content-disposition"] == f'attachment; filename="audit-{audit_id}.csv"'
    foreign = client.get(url, params={"format": "pdf"}, headers=auth(make_token("admin", "b")))
    assert foreign.status_code == 404


def test_pdf_of_a_report_over_the_size_limit_is_refused(
    client: TestClient,
    make_token: Callable[..., str],
    dataset_id: str,
    api_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from audit.settings import get_settings

    token = make_token("reviewer")
    audit_id = _submit(client, make_token("submitter"), dataset_id)
    finish_audit(api_settings.db_url, audit_id)
    monkeypatch.setenv("BIASAUDIT_PDF_MAX_HTML_BYTES", "2048")
    get_settings.cache_clear()
    url = f"/v1/audits/{audit_id}/report"
    refused = client.get(url, params={"format": "pdf"}, headers=auth(token))
    assert refused.status_code == 422 and refused.json()["field"] == "format"
    assert "larger than the 2048 bytes of HTML" in refused.json()["detail"]
    assert "pdf" not in _formats(api_settings, audit_id)  # nothing stored
    assert client.get(url, params={"format": "csv"}, headers=auth(token)).status_code == 200


def test_report_of_an_unfinished_or_foreign_audit(
    client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    audit_id = _submit(client, make_token("submitter"), dataset_id)
    queued = client.get(f"/v1/audits/{audit_id}/report", headers=auth(make_token("reviewer")))
    assert queued.status_code == 409 and "queued" in queued.json()["detail"]
    foreign = client.get(f"/v1/audits/{audit_id}/report", headers=auth(make_token("admin", "b")))
    assert foreign.status_code == 404


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("br, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        (None, False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_read_with_its_weights(header: str | None, accepted: bool) -> None:
    assert _accepts_gzip(header) is accepted
