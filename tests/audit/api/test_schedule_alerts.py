"""Schedule alerts over the API: the webhook allowlist and SSRF checks at save, the secret once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from audit.monitoring.webhooks import host_listed, sign
from audit.settings import Settings
from tests.audit.api.helpers import auth, spec_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIASAUDIT_WEBHOOK_ALLOWLIST", "hooks.example.com,127.0.0.1,*.0.0.1")


def test_host_matching_and_signature() -> None:
    listed = "hooks.example.com, *.corp.example"
    assert host_listed("hooks.example.com", listed) == "exact"
    assert host_listed("HOOKS.example.com.", listed) == "exact"
    assert host_listed("a.b.corp.example", listed) == "wildcard"
    assert host_listed("corp.example", listed) is None  # *.suffix: sub-domains only
    assert host_listed("evilcorp.example", listed) is None
    assert host_listed("hooks.example.com.evil.org", listed) is None
    assert sign(b'{"a":1}', "k") == (
        "sha256=" + __import__("hmac").new(b"k", b'{"a":1}', "sha256").hexdigest()
    )


def test_webhook_refused_at_save_and_secret_shown_once(
    allowlist: None, client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    admin = make_token("admin")
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    refused = {
        "https://evil.example.org/hook": "not on the server's webhook allowlist",
        "http://10.0.0.5/hook": "not on the server's webhook allowlist",
        "http://127.0.0.1.nip.io/": "not on the server's webhook allowlist",
        "ftp://hooks.example.com/": "not an http:// or https:// URL",
        "http://user:pw@127.0.0.1/": "credentials",
    }
    for url, message in refused.items():
        response = client.post(
            "/v1/schedules", json={**body, "alert": {"webhook": url}}, headers=auth(admin)
        )
        assert response.status_code == 422, (url, response.text)
        assert response.json()["field"] == "alert.webhook"
        assert message in response.json()["detail"]
    assert client.get("/v1/schedules", headers=auth(admin)).json()["count"] == 0

    created = client.post(
        "/v1/schedules",
        json={**body, "alert": {"webhook": "http://127.0.0.1:9/hook"}},
        headers=auth(admin),
    )
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["alert"] == {"webhook": "http://127.0.0.1:9/hook"}
    secret = schedule["webhook_secret"]
    assert isinstance(secret, str) and len(secret) == 64
    again = client.get(f"/v1/schedules/{schedule['id']}", headers=auth(admin)).json()
    assert again["webhook_secret"] is None and again["alert"] == schedule["alert"]

    url = f"/v1/schedules/{schedule['id']}"
    changed = client.patch(
        url, json={"alert": {"webhook": "http://127.0.0.1/"}}, headers=auth(admin)
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["webhook_secret"] not in (None, secret)  # a new secret, shown once
    refused_patch = client.patch(
        url, json={"alert": {"webhook": "https://evil.example.org/"}}, headers=auth(admin)
    )
    assert refused_patch.status_code == 422
    assert refused_patch.json()["field"] == "alert.webhook"
    bad_baseline = client.patch(url, json={"baseline_audit_id": "nope"}, headers=auth(admin))
    assert bad_baseline.status_code == 422
    assert bad_baseline.json()["field"] == "baseline_audit_id"
    cleared = client.patch(url, json={"alert": None}, headers=auth(admin)).json()
    assert cleared["alert"] is None
    alerts = client.get(f"{url}/alerts", headers=auth(admin))
    assert alerts.status_code == 200 and alerts.json() == {"data": [], "count": 0}
    other = make_token("admin", project="other")
    assert client.get(f"{url}/alerts", headers=auth(other)).status_code == 404


def test_private_address_through_wildcard_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from audit.monitoring.webhooks import WebhookRefused, check_webhook

    with pytest.raises(WebhookRefused, match="private or loopback"):
        check_webhook("http://127.0.0.1/x", "*.0.0.1")
    assert check_webhook("http://127.0.0.1/x", "127.0.0.1")[3] == "127.0.0.1"


def test_source_checked_at_submission(
    client: TestClient,
    make_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BIASAUDIT_SOURCE_HIRING_URL", "sqlite:///never-opened-here.db")
    admin = make_token("admin")
    dataset = {
        "label": "qualified",
        "prediction": "advanced",
        "protected": ["sex"],
        "query": "select * from decisions where decided_at < :window_end",
    }
    cases = {
        "dataset.source": ({"source": "nowhere"}, "no source 'nowhere' is configured"),
        "dataset.query": (
            {"source": "hiring", "query": "select 1; delete from decisions"},
            "one statement only",
        ),
    }
    for field, (extra, message) in cases.items():
        spec = {"name": "s", "domain": "hiring", "dataset": {**dataset, **extra},
                "probes": [{"kind": "demographic"}]}  # fmt: skip
        for url, body in (("/v1/audits", spec), ("/v1/schedules",
                          {"name": "w", "cron": "0 3 * * 1", "spec": spec})):  # fmt: skip
            response = client.post(url, json=body, headers=auth(admin))
            assert response.status_code == 422, (url, response.text)
            assert message in response.json()["detail"], response.text
            assert response.json()["field"].removeprefix("spec.") == field
    both = {"name": "s", "domain": "hiring", "probes": [{"kind": "demographic"}],
            "dataset": {**dataset, "source": "hiring", "path": "x.csv"}}  # fmt: skip
    response = client.post("/v1/audits", json=both, headers=auth(admin))
    assert response.status_code == 422 and "not both" in response.json()["detail"]
    good = {"name": "s", "domain": "hiring", "probes": [{"kind": "demographic"}],
            "dataset": {**dataset, "source": "hiring"}}  # fmt: skip
    saved = client.post(
        "/v1/schedules", json={"name": "w", "cron": "0 3 * * 1", "spec": good}, headers=auth(admin)
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["spec"]["dataset"]["source"] == "hiring"
    assert "sqlite" not in saved.text  # the URL is the server's, never in the spec


def test_settle_seconds_saved_changed_and_bounded(
    client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    admin = make_token("admin")
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    for bad in (-1, 30 * 86400 + 1, "soon"):
        refused = client.post(
            "/v1/schedules", json={**body, "settle_seconds": bad}, headers=auth(admin)
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert "settle_seconds" in refused.text
    created = client.post(
        "/v1/schedules", json={**body, "settle_seconds": 3600}, headers=auth(admin)
    )
    assert created.status_code == 201, created.text
    assert created.json()["settle_seconds"] == 3600
    url = f"/v1/schedules/{created.json()['id']}"
    changed = client.patch(url, json={"settle_seconds": 600}, headers=auth(admin))
    assert changed.status_code == 200 and changed.json()["settle_seconds"] == 600
    assert client.get(url, headers=auth(admin)).json()["settle_seconds"] == 600
    plain = client.post("/v1/schedules", json={**body, "name": "other"}, headers=auth(admin))
    assert plain.json()["settle_seconds"] == 0


def plant_previous_window(db_url: str, schedule_id: str, audit_id: str, end: str) -> None:
    """Make ``audit_id`` the schedule's last run, its ``dataset.source`` window ending at
    ``end`` (what the scheduler stores on each run's spec)."""
    from audit.storage import db
    from audit.storage.models import Audit, Schedule

    with db.session_scope(db_url) as session:
        audit = session.get(Audit, audit_id)
        schedule = session.get(Schedule, schedule_id)
        assert audit is not None and schedule is not None
        audit.spec = {**schedule.spec, "dataset": {**schedule.spec["dataset"], "window_end": end}}
        schedule.last_audit_id = audit_id


def source_spec() -> dict[str, object]:
    return {
        "name": "s",
        "domain": "hiring",
        "probes": [{"kind": "demographic"}],
        "dataset": {
            "source": "hiring",
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex"],
            "query": "select * from decisions where decided_at < :window_end",
        },
    }


def test_settle_change_that_would_end_the_next_window_before_it_starts_is_refused(
    client: TestClient,
    make_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    api_settings: Settings,
    dataset_id: str,
) -> None:
    from datetime import datetime, timedelta

    from audit.storage import db
    from audit.storage.models import Schedule
    from audit.storage.schedules import as_utc, source_window

    monkeypatch.setenv("BIASAUDIT_SOURCE_HIRING_URL", "sqlite:///never-opened-here.db")
    admin = make_token("admin")
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": source_spec(), "settle_seconds": 3600}
    created = client.post("/v1/schedules", json=body, headers=auth(admin))
    assert created.status_code == 201, created.text
    url = f"/v1/schedules/{created.json()['id']}"
    # no run yet: the first window starts at the cron's previous time, any delay fits
    assert (
        client.patch(url, json={"settle_seconds": 30 * 86400}, headers=auth(admin)).status_code
        == 200
    )
    assert client.patch(url, json={"settle_seconds": 3600}, headers=auth(admin)).status_code == 200
    # the last run (a week before the next) read up to its due time less an hour
    due = datetime.fromisoformat(created.json()["next_run_at"])
    run = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(admin)).json()["id"]
    last_end = (due - timedelta(days=7, hours=1)).isoformat()
    db_url = api_settings.db_url
    plant_previous_window(db_url, created.json()["id"], run, last_end)
    limit = 7 * 86400 + 3600  # the next window would be empty from here on
    for bad in (limit, limit + 1, 30 * 86400):
        refused = client.patch(url, json={"settle_seconds": bad}, headers=auth(admin))
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["field"] == "settle_seconds"
        detail = refused.json()["detail"]
        assert detail.startswith(f"settle_seconds: {bad} would end the next window")
        assert f"use at most {limit - 1}" in detail and last_end in detail
    assert client.get(url, headers=auth(admin)).json()["settle_seconds"] == 3600  # unchanged
    fits = client.patch(url, json={"settle_seconds": limit - 1}, headers=auth(admin))
    assert fits.status_code == 200 and fits.json()["settle_seconds"] == limit - 1
    with db.session_scope(db_url) as session:  # the scheduler's window: one second long
        row = session.get(Schedule, created.json()["id"])
        assert row is not None
        window = source_window(session, row, previous=run, due=as_utc(due))
        assert window is not None
        assert as_utc(window[1]) - as_utc(window[0]) == timedelta(seconds=1)
    # a spec without dataset.source has no window: any delay within the bounds
    plain = {"name": "files", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    other = client.post("/v1/schedules", json=plain, headers=auth(admin)).json()
    plant_previous_window(db_url, other["id"], run, last_end)
    assert (
        client.patch(
            f"/v1/schedules/{other['id']}", json={"settle_seconds": 30 * 86400}, headers=auth(admin)
        ).status_code
        == 200
    )
