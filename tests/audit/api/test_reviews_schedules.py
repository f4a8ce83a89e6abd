"""Reviewer sign-off (succeeded audits only) and recurring schedules (admin, cron checked)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from audit.settings import Settings
from tests.audit.api.helpers import auth, finish_audit, spec_for

pytestmark = pytest.mark.postgres


def test_reviews(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    submitter, reviewer = make_token("submitter"), make_token("reviewer")
    audit_id = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(submitter)).json()[
        "id"
    ]
    url = f"/v1/audits/{audit_id}/reviews"
    early = client.post(url, json={"decision": "approve"}, headers=auth(reviewer))
    assert early.status_code == 409
    assert "only succeeded audits" in early.json()["detail"]
    finish_audit(api_settings.db_url, audit_id)
    first = client.post(url, json={"decision": "reject", "comment": "gap"}, headers=auth(reviewer))
    assert first.status_code == 201, first.text
    assert {k: first.json()[k] for k in ("audit_id", "decision", "comment")} == {
        "audit_id": audit_id,
        "decision": "reject",
        "comment": "gap",
    }
    second = client.post(url, json={"decision": "approve"}, headers=auth(reviewer))
    assert second.status_code == 201
    listed = client.get(url, headers=auth(submitter)).json()
    assert listed["count"] == 2
    assert [r["decision"] for r in listed["data"]] == ["reject", "approve"]
    for body, field in [
        ({"decision": "maybe"}, "decision"),
        ({}, "decision"),
        ({"decision": "approve", "extra": 1}, "extra"),
    ]:
        response = client.post(url, json=body, headers=auth(reviewer))
        assert response.status_code == 422
        assert response.json()["field"] == field
    assert client.get("/v1/audits/nope/reviews", headers=auth(reviewer)).status_code == 404


def test_schedules_crud(
    client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    admin = make_token("admin")
    body = {"name": "weekly-hiring", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    created = client.post("/v1/schedules", json=body, headers=auth(admin))
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert (schedule["name"], schedule["cron"], schedule["enabled"]) == (
        "weekly-hiring",
        "0 3 * * 1",
        True,
    )
    assert schedule["next_run_at"] is not None
    assert schedule["spec"]["dataset"]["id"] == dataset_id
    duplicate = client.post("/v1/schedules", json=body, headers=auth(admin))
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "name"
    listed = client.get("/v1/schedules", headers=auth(admin)).json()
    assert [s["id"] for s in listed["data"]] == [schedule["id"]]
    one = client.get(f"/v1/schedules/{schedule['id']}", headers=auth(admin))
    assert one.json() == schedule
    deleted = client.delete(f"/v1/schedules/{schedule['id']}", headers=auth(admin))
    assert deleted.status_code == 204
    after = client.get(f"/v1/schedules/{schedule['id']}", headers=auth(admin)).json()
    assert (after["enabled"], after["next_run_at"]) == (False, None)
    assert client.delete("/v1/schedules/nope", headers=auth(admin)).status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"cron": "every monday"}, 422, "cron"),
        ({"cron": "0 3 * *"}, 422, "cron"),
        ({"cron": "61 3 * * 1"}, 422, "cron"),
        ({"name": ""}, 422, "name"),
        ({"spec": {"name": "x", "dataset": {"protected": []}}}, 422, "spec.dataset"),
        ({"spec": spec_for("00000000-0000-4000-8000-000000000000")}, 404, "spec.dataset.id"),
        ({"spec": None}, 422, "spec"),
    ],
)
def test_invalid_schedule(
    client: TestClient,
    make_token: Callable[..., str],
    dataset_id: str,
    change: dict,
    status: int,
    field: str,
) -> None:
    admin = make_token("admin")
    body = {"name": "s", "cron": "0 3 * * 1", "spec": spec_for(dataset_id), **change}
    response = client.post("/v1/schedules", json=body, headers=auth(admin))
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert client.get("/v1/schedules", headers=auth(admin)).json()["count"] == 0
