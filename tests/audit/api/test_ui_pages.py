"""Dashboard pages: the filtered audits list, an audit, the review form, roles and tenancy."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Review
from audit.storage.repo import create_audit
from tests.audit.api.helpers import auth, finish_audit, spec_for
from tests.audit.api.ui_helpers import sign_in

pytestmark = pytest.mark.postgres


def _submit(client: TestClient, token: str, dataset_id: str, name: str) -> str:
    answer = client.post("/v1/audits", json=spec_for(dataset_id, name=name), headers=auth(token))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _reviews(url: str, audit_id: str) -> list[tuple[str, str | None]]:
    with db.session_scope(url) as session:
        rows = session.scalars(select(Review).where(Review.audit_id == audit_id))
        return [(r.decision, r.reviewer) for r in rows]


@pytest.fixture
def audits(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> dict[str, str]:
    """Two succeeded audits (one approved) and one still queued, in project ``acme``."""
    submitter = make_token("submitter")
    ids = {
        name: _submit(client, submitter, dataset_id, name) for name in ("alpha", "beta", "gamma")
    }
    for name in ("alpha", "beta"):
        finish_audit(api_settings.db_url, ids[name])
    approved = client.post(
        f"/v1/audits/{ids['beta']}/reviews",
        json={"decision": "approve"},
        headers=auth(make_token("reviewer")),
    )
    assert approved.status_code == 201
    return ids


def _names(html: str) -> set[str]:
    return {n for n in ("alpha", "beta", "gamma") if f">{n}</a>" in html}


def test_filters_narrow_the_list(
    client: TestClient, make_token: Callable[..., str], audits: dict[str, str]
) -> None:
    sign_in(client, make_token("reviewer"))
    assert _names(client.get("/ui/").text) == {"alpha", "beta", "gamma"}
    assert _names(client.get("/ui/?status=queued").text) == {"gamma"}
    assert _names(client.get("/ui/?review=awaiting").text) == {"alpha"}
    assert _names(client.get("/ui/?review=approved").text) == {"beta"}
    assert _names(client.get("/ui/?review=rejected").text) == set()
    assert _names(client.get("/ui/?verdict=fail&status=succeeded").text) == {"alpha", "beta"}
    assert _names(client.get("/ui/?from=2000-01-01&to=2000-01-02").text) == set()
    page = client.get("/ui/?review=approved")
    assert "badge-approved" in page.text and "badge-fail" in page.text
    for query, field in (
        ("status=done", "status"),
        ("from=yesterday", "from"),
        ("model=xyz", "model"),
    ):
        bad = client.get(f"/ui/?{query}")
        assert bad.status_code == 422
        assert f"{field}:" in bad.text


def test_pages_of_twenty(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    with db.session_scope(api_settings.db_url) as session:
        for i in range(23):
            create_audit(
                session=session,
                project="acme",
                spec={"name": f"a{i}"},
                name=f"audit-{i:02d}",
                domain="hiring",
                spec_sha256=f"{i:064d}",
            )
    sign_in(client, make_token("reviewer"))
    first = client.get("/ui/?status=queued")
    assert first.text.count('href="/ui/audits/') == 20 and "Page 1 of 2" in first.text
    assert 'href="/ui/?status=queued&amp;page=2"' in first.text
    second = client.get("/ui/?status=queued&page=2")
    assert second.text.count('href="/ui/audits/') == 3 and "audit-00" in second.text
    assert client.get("/ui/?page=0").status_code == 422


def test_audit_page_shows_verdict_summary_chart_and_tables(
    client: TestClient, make_token: Callable[..., str], audits: dict[str, str]
) -> None:
    sign_in(client, make_token("submitter"))
    page = client.get(f"/ui/audits/{audits['alpha']}")
    assert page.status_code == 200
    html = page.text
    assert html.index('id="summary"') < html.index('id="checks"')
    assert re.search(r'id="summary">[^<]*\b\d+ of \d+ checks failed', html)
    assert '<svg class="chart"' in html
    assert "Impact ratio (95% CI)" in html
    assert html.index("status-fail") < html.index('<details class="passing">')
    assert "Submit review" not in html  # a submitter gets no review form
    report = client.get(f"/ui/audits/{audits['alpha']}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "LL144" in report.text or "Local Law 144" in report.text
    assert "form-action 'none'" in report.headers["content-security-policy"]
    pdf = client.get(f"/ui/audits/{audits['alpha']}/report?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get(f"/ui/audits/{audits['gamma']}/report").status_code == 409


def test_reviewer_approves_through_the_form(
    client: TestClient,
    make_token: Callable[..., str],
    audits: dict[str, str],
    api_settings: Settings,
) -> None:
    csrf = sign_in(client, make_token("reviewer"))
    url = f"/ui/audits/{audits['alpha']}/review"
    missing = client.post(url, data={"decision": "approve"})
    assert missing.status_code == 403
    assert _reviews(api_settings.db_url, audits["alpha"]) == []
    done = client.post(
        url,
        data={"decision": "approve", "comment": "ok", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert [d for d, _ in _reviews(api_settings.db_url, audits["alpha"])] == ["approve"]
    page = client.get(f"/ui/audits/{audits['alpha']}")
    assert "badge-approved" in page.text and "Submit review" in page.text
    assert "Recorded as <strong>token " in page.text  # a token created without a name
    queued = client.post(
        f"/ui/audits/{audits['gamma']}/review", data={"decision": "approve", "csrf_token": csrf}
    )
    assert queued.status_code == 409


def test_submitter_cannot_approve(
    client: TestClient,
    make_token: Callable[..., str],
    audits: dict[str, str],
    api_settings: Settings,
) -> None:
    csrf = sign_in(client, make_token("submitter"))
    refused = client.post(
        f"/ui/audits/{audits['alpha']}/review", data={"decision": "approve", "csrf_token": csrf}
    )
    assert refused.status_code == 403
    assert "may not review audits" in refused.text
    assert _reviews(api_settings.db_url, audits["alpha"]) == []


def test_another_tenants_audit_is_not_found(
    client: TestClient,
    make_token: Callable[..., str],
    audits: dict[str, str],
    api_settings: Settings,
) -> None:
    csrf = sign_in(client, make_token("admin", project="other"))
    assert _names(client.get("/ui/").text) == set()
    assert client.get(f"/ui/audits/{audits['alpha']}").status_code == 404
    assert client.get(f"/ui/audits/{audits['alpha']}/report").status_code == 404
    assert client.get(f"/ui/audits/{audits['alpha']}/report?format=pdf").status_code == 404
    posted = client.post(
        f"/ui/audits/{audits['alpha']}/review", data={"decision": "reject", "csrf_token": csrf}
    )
    assert posted.status_code == 404
    assert _reviews(api_settings.db_url, audits["alpha"]) == []
