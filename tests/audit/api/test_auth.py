"""Bearer tokens, roles and tenancy: 401 before 403 before 404, and no secret leaks."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from audit.api.logging import JsonFormatter
from audit.settings import Settings
from audit.storage import db
from audit.storage.repo import revoke_token, verify_token
from tests.audit.api.helpers import auth, finish_audit, make_csv, spec_for, upload

pytestmark = pytest.mark.postgres

PROTECTED = [
    ("GET", "/v1/audits"),
    ("POST", "/v1/audits"),
    ("GET", "/v1/audits/x"),
    ("GET", "/v1/audits/x/results"),
    ("GET", "/v1/audits/x/report"),
    ("POST", "/v1/audits/x/cancel"),
    ("GET", "/v1/audits/x/reviews"),
    ("POST", "/v1/audits/x/reviews"),
    ("POST", "/v1/datasets"),
    ("GET", "/v1/datasets/x"),
    ("GET", "/v1/schedules"),
    ("POST", "/v1/schedules"),
    ("GET", "/v1/schedules/x"),
    ("DELETE", "/v1/schedules/x"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_token_is_401_with_challenge(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["field"] == "Authorization"
    assert "bearer token" in response.json()["detail"]


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "ba_notatoken", "Bearer ba_unknown"]
)
def test_malformed_or_unknown_token_is_401(client: TestClient, header: str) -> None:
    response = client.get("/v1/audits", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_token_is_401(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    token = make_token("admin")
    assert client.get("/v1/audits", headers=auth(token)).status_code == 200
    with db.session_scope(api_settings.db_url) as session:
        row = verify_token(session=session, token=token)
        assert row is not None
        assert revoke_token(session=session, project="acme", token_id=row.id)
    response = client.get("/v1/audits", headers=auth(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked token"


def test_health_routes_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_roles(client: TestClient, make_token: Callable[..., str], api_settings: Settings) -> None:
    submitter, reviewer, admin = (make_token(r) for r in ("submitter", "reviewer", "admin"))
    data = make_csv()
    # reviewer: reads and reviews, may not upload, submit or cancel
    assert upload(client, reviewer, data).status_code == 403
    dataset_id = upload(client, submitter, data).json()["id"]
    spec = spec_for(dataset_id)
    denied = client.post("/v1/audits", json=spec, headers=auth(reviewer))
    assert denied.status_code == 403
    assert "reviewer" in denied.json()["detail"]
    audit_id = client.post("/v1/audits", json=spec, headers=auth(submitter)).json()["id"]
    assert client.post(f"/v1/audits/{audit_id}/cancel", headers=auth(reviewer)).status_code == 403
    assert client.get(f"/v1/audits/{audit_id}", headers=auth(reviewer)).status_code == 200
    finish_audit(api_settings.db_url, audit_id)
    review = {"decision": "approve", "comment": "ok"}
    # submitter: may not review, may not manage schedules
    assert (
        client.post(
            f"/v1/audits/{audit_id}/reviews", json=review, headers=auth(submitter)
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/v1/audits/{audit_id}/reviews", json=review, headers=auth(reviewer)
        ).status_code
        == 201
    )
    assert (
        client.post(f"/v1/audits/{audit_id}/reviews", json=review, headers=auth(admin)).status_code
        == 201
    )
    schedule = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec}
    for token in (submitter, reviewer):
        assert client.get("/v1/schedules", headers=auth(token)).status_code == 403
        assert client.post("/v1/schedules", json=schedule, headers=auth(token)).status_code == 403
    assert client.post("/v1/schedules", json=schedule, headers=auth(admin)).status_code == 201
    # admin: everything a submitter can do
    assert upload(client, admin, data).status_code == 201
    assert client.post("/v1/audits", json=spec, headers=auth(admin)).status_code == 202


def test_other_project_objects_are_404_like_missing_ones(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    acme, other = make_token("admin", "acme"), make_token("admin", "globex")
    dataset_id = upload(client, acme, make_csv()).json()["id"]
    audit_id = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(acme)).json()["id"]
    finish_audit(api_settings.db_url, audit_id)
    schedule = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    schedule_id = client.post("/v1/schedules", json=schedule, headers=auth(acme)).json()["id"]
    missing = "00000000-0000-4000-8000-000000000000"
    for method, template, body in [
        ("GET", "/v1/audits/{}", None),
        ("GET", "/v1/audits/{}/results", None),
        ("GET", "/v1/audits/{}/report", None),
        ("POST", "/v1/audits/{}/cancel", None),
        ("GET", "/v1/audits/{}/reviews", None),
        ("POST", "/v1/audits/{}/reviews", {"decision": "approve"}),
    ]:
        theirs = client.request(method, template.format(audit_id), json=body, headers=auth(other))
        absent = client.request(method, template.format(missing), json=body, headers=auth(other))
        assert theirs.status_code == absent.status_code == 404, template
        assert theirs.json()["detail"].replace(audit_id, "ID") == absent.json()["detail"].replace(
            missing, "ID"
        )
    assert client.get(f"/v1/datasets/{dataset_id}", headers=auth(other)).status_code == 404
    assert client.get(f"/v1/schedules/{schedule_id}", headers=auth(other)).status_code == 404
    assert client.delete(f"/v1/schedules/{schedule_id}", headers=auth(other)).status_code == 404
    assert client.get("/v1/audits", headers=auth(other)).json()["count"] == 0
    # another project's dataset id in a spec: 404 on dataset.id, nothing recorded
    response = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(other))
    assert response.status_code == 404
    assert response.json()["field"] == "dataset.id"
    # the owner still sees everything, untouched
    assert client.get(f"/v1/audits/{audit_id}", headers=auth(acme)).json()["status"] == "succeeded"
    assert client.get(f"/v1/schedules/{schedule_id}", headers=auth(acme)).json()["enabled"] is True


def test_token_never_reaches_redis_or_logs(
    client: TestClient, make_token: Callable[..., str], redis_db: redis.Redis
) -> None:
    token = make_token("submitter")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        dataset_id = upload(client, token, make_csv()).json()["id"]
        response = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
        assert response.status_code == 202
        client.get(f"/v1/audits/{response.json()['id']}", headers=auth(token))
        client.get("/v1/audits", headers={"Authorization": f"Bearer {token}x"})  # a 401
        logging.getLogger("test").info("client sent Authorization: Bearer %s", token)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    logs = stream.getvalue()
    assert response.json()["id"] in logs  # the audit id is logged ...
    assert token not in logs  # ... the token never, even when a message contains it
    assert token[:12] not in logs
    assert "[redacted]" in logs
    keys = redis_db.keys("*")
    assert keys, "the submission should have published a message"
    for key in keys:
        kind = redis_db.type(key)
        assert isinstance(kind, bytes)  # no decode_responses: every reply is bytes
        readers: dict[bytes, Callable[[bytes | str], list[Any]]] = {
            b"list": lambda k: redis_db.lrange(k, 0, -1),
            b"set": lambda k: list(redis_db.smembers(k)),
            b"string": lambda k: [redis_db.get(k)],
            b"hash": lambda k: [v for kv in redis_db.hgetall(k).items() for v in kv],
            b"zset": lambda k: redis_db.zrange(k, 0, -1),
        }
        values = readers[kind](key)
        for value in [key, *values]:
            assert token.encode() not in (value or b"")
            assert token[3:15].encode() not in (value or b"")
