"""People, sign-off, the event log, comparison and history through the real app
(PostgreSQL): separation of duties across a person's tokens, reviews and review state in
``GET /v1/audits/{id}`` and in the report, ``GET /v1/events`` (roles, tenancy, pages),
``GET /v1/audits/{a}/compare/{b}`` (a planted change is significant; the p-value matches
scipy's chi-squared test) and a schedule's history."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from scipy.stats import chi2_contingency

from audit.settings import Settings
from audit.storage import db
from audit.storage.repo import create_audit, create_token
from tests.audit.api.helpers import auth, finish_audit, make_csv, spec_for, upload

pytestmark = pytest.mark.postgres


def _token(settings: Settings, role: str, name: str | None, project: str = "acme") -> str:
    with db.session_scope(settings.db_url) as session:
        token, _ = create_token(session=session, project=project, role=role, name=name)
    return token


def _even_csv(rows: int = 400) -> bytes:
    """The helpers' table with the planted gap removed: males selected at 50%, females at 49%
    (two fewer, so males stay the reference group of the impact ratio)."""
    lines = ["sex,race,qualified,advanced"]
    for i in range(rows):
        sex = "female" if i % 2 else "male"
        race = ("Black", "White", "Asian")[i % 3]
        selected = i % 4 < 2 and i not in (1, 5)
        lines.append(f"{sex},{race},{(i // 3) % 2},{int(selected)}")
    return ("\n".join(lines) + "\n").encode()


def _finished(client: TestClient, settings: Settings, token: str, csv: bytes) -> str:
    dataset = upload(client, token, csv).json()["id"]
    response = client.post("/v1/audits", json=spec_for(dataset), headers=auth(token))
    assert response.status_code == 202, response.text
    audit_id = str(response.json()["id"])
    finish_audit(settings.db_url, audit_id)
    return audit_id


def test_a_person_cannot_review_their_own_audit_through_any_token(
    client: TestClient, api_settings: Settings
) -> None:
    ada_admin = _token(api_settings, "admin", "Ada Lovelace <ada@example.org>")
    ada_reviewer = _token(api_settings, "reviewer", "ada  lovelace <ADA@example.org>")
    grace = _token(api_settings, "reviewer", "Grace Hopper")
    audit_id = _finished(client, api_settings, ada_admin, make_csv())
    view = client.get(f"/v1/audits/{audit_id}", headers=auth(grace)).json()
    assert view["submitted_by"] == "Ada Lovelace <ada@example.org>"
    assert (view["review_state"], view["reviews"]) == ("awaiting review", [])

    url = f"/v1/audits/{audit_id}/reviews"
    for own in (ada_admin, ada_reviewer):  # the submitting token, and another of hers
        refused = client.post(url, json={"decision": "approve"}, headers=auth(own))
        assert refused.status_code == 403, refused.text
        assert "separation of duties" in refused.json()["detail"]
    approved = client.post(url, json={"decision": "approve", "comment": "ok"}, headers=auth(grace))
    assert approved.status_code == 201 and approved.json()["reviewer"] == "Grace Hopper"
    view = client.get(f"/v1/audits/{audit_id}", headers=auth(ada_admin)).json()
    assert view["review_state"] == "approved"
    assert [(r["decision"], r["reviewer"], r["comment"]) for r in view["reviews"]] == [
        ("approve", "Grace Hopper", "ok")
    ]
    client.post(url, json={"decision": "reject", "comment": "data gap"}, headers=auth(grace))
    view = client.get(f"/v1/audits/{audit_id}", headers=auth(grace)).json()
    assert view["review_state"] == "rejected"  # the latest decision wins
    listed = client.get("/v1/audits", headers=auth(grace)).json()["data"]
    assert [(a["id"], a["review_state"]) for a in listed] == [(audit_id, "rejected")]
    for state, count in [("rejected", 1), ("approved", 0), ("awaiting review", 0)]:
        page = client.get("/v1/audits", params={"review_state": state}, headers=auth(grace))
        assert page.json()["count"] == count
    bad = client.get("/v1/audits", params={"review_state": "maybe"}, headers=auth(grace))
    assert bad.status_code == 422 and bad.json()["field"] == "review_state"


def test_an_unnamed_token_is_a_person_of_its_own(
    client: TestClient, api_settings: Settings
) -> None:
    admin = _token(api_settings, "admin", None)
    other = _token(api_settings, "admin", None)
    audit_id = _finished(client, api_settings, admin, make_csv())
    url = f"/v1/audits/{audit_id}/reviews"
    assert client.post(url, json={"decision": "approve"}, headers=auth(admin)).status_code == 403
    done = client.post(url, json={"decision": "approve"}, headers=auth(other))
    assert done.status_code == 201 and done.json()["reviewer"].startswith("token ")


def test_the_report_shows_a_review_stored_after_it_was_rendered(
    client: TestClient, api_settings: Settings
) -> None:
    submitter = _token(api_settings, "submitter", "Ada Lovelace")
    grace = _token(api_settings, "reviewer", "Grace Hopper")
    audit_id = _finished(client, api_settings, submitter, make_csv())
    before = client.get(f"/v1/audits/{audit_id}/report", headers=auth(grace))
    assert before.status_code == 200 and "Grace Hopper" not in before.text
    client.post(
        f"/v1/audits/{audit_id}/reviews",
        json={"decision": "approve", "comment": "<script>x</script> fine"},
        headers=auth(grace),
    )
    after = client.get(f"/v1/audits/{audit_id}/report", headers=auth(submitter))
    assert after.status_code == 200
    assert "Grace Hopper" in after.text and "approved" in after.text
    assert "&lt;script&gt;x&lt;/script&gt; fine" in after.text and "<script>x" not in after.text


def test_event_log_route_roles_tenancy_and_pages(
    client: TestClient, api_settings: Settings
) -> None:
    submitter = _token(api_settings, "submitter", "Ada Lovelace")
    reviewer = _token(api_settings, "reviewer", "Grace Hopper")
    beta_admin = _token(api_settings, "admin", "Beta Admin", project="beta")
    audit_id = _finished(client, api_settings, submitter, make_csv())
    client.post(f"/v1/audits/{audit_id}/reviews", json={"decision": "approve"},
                headers=auth(reviewer))  # fmt: skip

    assert client.get("/v1/events", headers=auth(submitter)).status_code == 403
    page = client.get("/v1/events", headers=auth(reviewer)).json()
    actions = [(e["action"], e["actor"]) for e in page["data"]]
    assert actions[:4] == [
        ("audit.reviewed", "Grace Hopper"),
        ("audit.finished", "worker"),
        ("audit.started", "worker test"),
        ("audit.submitted", "Ada Lovelace"),
    ]
    assert {k for k in page["data"][0]} >= {"seq", "at", "actor", "action", "subject",
                                             "sha256", "prev_sha256"}  # fmt: skip
    newest, older = page["data"][0], page["data"][1]
    assert newest["prev_sha256"] == older["sha256"] and newest["seq"] == older["seq"] + 1
    one = client.get("/v1/events", params={"limit": 1, "offset": 1}, headers=auth(reviewer)).json()
    assert [e["seq"] for e in one["data"]] == [older["seq"]] and one["count"] == page["count"]
    scoped = client.get("/v1/events", params={"audit_id": audit_id}, headers=auth(reviewer))
    assert {e["audit_id"] for e in scoped.json()["data"]} == {audit_id}
    beta = client.get("/v1/events", headers=auth(beta_admin)).json()
    assert beta["count"] == 1 and beta["data"][0]["action"] == "key.created"
    bad = client.get("/v1/events", params={"limit": 0}, headers=auth(reviewer))
    assert bad.status_code == 422


def test_compare_flags_a_planted_change_as_significant(
    client: TestClient, api_settings: Settings
) -> None:
    submitter = _token(api_settings, "submitter", "Ada Lovelace")
    gap = _finished(client, api_settings, submitter, make_csv())
    even = _finished(client, api_settings, submitter, _even_csv())
    response = client.get(f"/v1/audits/{gap}/compare/{even}", headers=auth(submitter))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["a"]["id"], body["b"]["id"]) == (gap, even)
    assert body["verdict"] == {"a": "fail", "b": "pass", "changed": True}
    rows = {(m["attribute"], m["group"], m["metric"]): m for m in body["metrics"]}
    female = rows[("sex", "female", "selection_rate")]
    assert female["a"] == pytest.approx(0.25) and female["b"] == pytest.approx(0.49)
    assert female["test"] == "two-proportion z" and female["significant"] is True
    # oracle: Pearson's chi-squared test on the 2x2 table, no continuity correction
    table = [[50, 150], [98, 102]]  # female selected / not, before and after (200 rows each)
    assert female["p_value"] == pytest.approx(chi2_contingency(table, correction=False)[1])
    male = rows[("sex", "male", "selection_rate")]
    assert male["significant"] is False and male["change"] == pytest.approx(0.0)
    ratio = rows[("sex", "female", "impact_ratio")]
    assert ratio["test"] == "non-overlapping CIs" and ratio["significant"] is True
    assert any(f["metric"] == "impact_ratio" and f["a"] == "fail" and f["b"] == "pass"
               for f in body["findings"])  # fmt: skip


def test_compare_is_tenant_scoped_and_needs_results(
    client: TestClient, api_settings: Settings
) -> None:
    acme = _token(api_settings, "submitter", "Ada")
    beta = _token(api_settings, "submitter", "Bea", project="beta")
    mine = _finished(client, api_settings, acme, make_csv())
    theirs = _finished(client, api_settings, beta, make_csv())
    assert client.get(f"/v1/audits/{mine}/compare/{theirs}", headers=auth(acme)).status_code == 404
    assert client.get(f"/v1/audits/{theirs}/compare/{mine}", headers=auth(acme)).status_code == 404
    dataset = upload(client, acme, make_csv()).json()["id"]
    queued = client.post("/v1/audits", json=spec_for(dataset), headers=auth(acme)).json()["id"]
    late = client.get(f"/v1/audits/{mine}/compare/{queued}", headers=auth(acme))
    assert late.status_code == 409 and "no results" in late.json()["detail"]


def _scheduled_run(settings: Settings, schedule_id: str, spec: dict[str, Any]) -> str:
    with db.session_scope(settings.db_url) as session:  # what the scheduler does when it fires
        audit = create_audit(
            session=session, project="acme", spec=spec, name=spec["name"], domain="hiring",
            spec_sha256="0" * 64, schedule_id=schedule_id, actor="scheduler",
        )  # fmt: skip
        audit_id = audit.id
    finish_audit(settings.db_url, audit_id)
    return audit_id


def test_schedule_history_has_each_groups_impact_ratio_trend(
    client: TestClient, api_settings: Settings
) -> None:
    admin = _token(api_settings, "admin", "Ada")
    first_data = upload(client, admin, make_csv()).json()["id"]
    later_data = upload(client, admin, _even_csv()).json()["id"]
    body = {"name": "quarterly", "cron": "0 3 1 */3 *", "spec": spec_for(first_data)}
    schedule = client.post("/v1/schedules", json=body, headers=auth(admin)).json()["id"]
    runs = [
        _scheduled_run(api_settings, schedule, spec_for(first_data)),
        _scheduled_run(api_settings, schedule, spec_for(later_data)),
    ]
    changed = client.delete(f"/v1/schedules/{schedule}", headers=auth(admin))
    assert changed.status_code == 204
    logged = client.get("/v1/events", headers=auth(admin)).json()["data"]
    by_schedule = [(e["action"], e["actor"]) for e in logged
                   if e["subject"] == f"schedule/{schedule}"]  # fmt: skip
    assert by_schedule == [("schedule.changed", "Ada"), ("schedule.created", "Ada")]
    found = client.get(f"/v1/history/schedules/{schedule}", headers=auth(admin))
    assert found.status_code == 200, found.text
    history = found.json()
    assert [r["id"] for r in history["runs"]] == runs  # oldest first
    line = next(s for s in history["series"] if (s["attribute"], s["group"]) == ("sex", "female"))
    assert [p["audit_id"] for p in line["points"]] == runs
    assert line["points"][0]["impact_ratio"] == pytest.approx(0.5)
    assert line["points"][1]["impact_ratio"] == pytest.approx(0.98)
    low, high = line["points"][0]["ci"]
    assert low < 0.5 < high
    other = _token(api_settings, "admin", "Bea", project="beta")
    assert client.get(f"/v1/history/schedules/{schedule}", headers=auth(other)).status_code == 404
    bad = client.get("/v1/history/models/not-a-hash", headers=auth(admin))
    assert bad.status_code == 422
    empty = client.get(f"/v1/history/models/{'a' * 64}", headers=auth(admin)).json()
    assert (empty["runs"], empty["series"]) == ([], [])
