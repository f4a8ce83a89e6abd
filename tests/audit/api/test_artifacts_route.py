"""GET /v1/audits/{id}/artifacts[/{name}]: the files an audit produced, streamed from storage.

Tenant-scoped (another project's audit is a 404), names checked against what the
audit stored (a path is a 422, an unknown name a 404 listing the files), kept when
a review drops the stored reports.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from fastapi.testclient import TestClient

from audit.settings import Settings
from audit.storage import db
from audit.storage.repo import add_review, store_results
from tests.audit.api.helpers import auth, claim, spec_for

NAME = "lda-best-sex.skops"


def _finished_with_file(
    client: TestClient, token: str, dataset_id: str, settings: Settings, blob: bytes
) -> str:
    response = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    assert response.status_code == 202, response.text
    audit_id = str(response.json()["id"])
    claim(settings.db_url, audit_id)
    with db.session_scope(settings.db_url) as session:
        assert store_results(
            session=session,
            audit_id=audit_id,
            results={"verdict": "pass"},
            reports={"html": "<!DOCTYPE html><title>r</title>"},
            artifacts={NAME: blob},
        )
    return audit_id


def test_a_stored_file_is_listed_and_downloaded_as_stored(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    blob = os.urandom(700_000)  # several stored pieces
    audit_id = _finished_with_file(client, token, dataset_id, api_settings, blob)

    listing = client.get(f"/v1/audits/{audit_id}/artifacts", headers=auth(token))
    assert listing.status_code == 200, listing.text
    (item,) = listing.json()["data"]
    assert item["name"] == NAME and item["size_bytes"] == len(blob)
    assert item["sha256"] == hashlib.sha256(blob).hexdigest()
    got = client.get(item["url"], headers=auth(token))
    assert got.status_code == 200 and got.content == blob
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["etag"] == f'"{item["sha256"]}"'
    assert f'filename="{NAME}"' in got.headers["content-disposition"]


def test_names_are_checked_against_what_the_audit_produced(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    audit_id = _finished_with_file(client, token, dataset_id, api_settings, b"model")
    base = f"/v1/audits/{audit_id}/artifacts"

    missing = client.get(f"{base}/lda-best-race.skops", headers=auth(token))
    assert missing.status_code == 404
    assert missing.json()["field"] == "name" and NAME in missing.json()["detail"]
    for bad in (".hidden", "%2E%2E", "report.html%00", "a%2F..%2F..%2Fetc%2Fpasswd", "x" * 300):
        refused = client.get(f"{base}/{bad}", headers=auth(token))
        assert refused.status_code in (404, 422), (bad, refused.status_code)
        assert "root:" not in refused.text
    dotted = client.get(f"{base}/.hidden", headers=auth(token))
    assert dotted.status_code == 422 and dotted.json()["field"] == "name"
    # the stored report's own format is not a file name the audit produced
    report = client.get(f"{base}/html", headers=auth(token))
    assert report.status_code == 404


def test_another_project_cannot_see_the_file(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    audit_id = _finished_with_file(
        client, make_token("submitter"), dataset_id, api_settings, b"model"
    )
    other = make_token("submitter", project="globex")
    for url in (f"/v1/audits/{audit_id}/artifacts", f"/v1/audits/{audit_id}/artifacts/{NAME}"):
        response = client.get(url, headers=auth(other))
        assert response.status_code == 404 and "audit" in response.json()["detail"]


def test_a_review_drops_the_reports_but_keeps_the_files(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    audit_id = _finished_with_file(client, token, dataset_id, api_settings, b"model bytes")
    with db.session_scope(api_settings.db_url) as session:
        add_review(session=session, project="acme", audit_id=audit_id, decision="approve")
    got = client.get(f"/v1/audits/{audit_id}/artifacts/{NAME}", headers=auth(token))
    assert got.status_code == 200 and got.content == b"model bytes"


def test_files_of_an_unfinished_audit_are_a_409(
    client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    token = make_token("submitter")
    response = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    audit_id = response.json()["id"]
    listing = client.get(f"/v1/audits/{audit_id}/artifacts", headers=auth(token))
    assert listing.status_code == 409
