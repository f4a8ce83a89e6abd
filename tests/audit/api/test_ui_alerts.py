"""Dashboard alerts: the schedules page lists them; a scheduled run's page has its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from audit.settings import Settings
from audit.storage import db
from audit.storage.alerts import raise_alerts
from audit.storage.models import Audit
from tests.audit.api.helpers import auth, finish_audit, spec_for
from tests.audit.api.ui_helpers import sign_in

pytestmark = pytest.mark.postgres


def test_alert_shown_on_schedules_and_audit_pages(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings, dataset_id: str
) -> None:
    admin = make_token("admin")
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    schedule = client.post("/v1/schedules", json=body, headers=auth(admin)).json()
    runs = []
    for _ in range(2):
        answer = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(admin))
        assert answer.status_code == 202, answer.text
        runs.append(answer.json()["id"])
        with db.session_scope(api_settings.db_url) as session:
            row = session.get(Audit, runs[-1])
            assert row is not None
            row.schedule_id = schedule["id"]
        results = finish_audit(api_settings.db_url, runs[-1])
    with db.session_scope(api_settings.db_url) as session:  # plant a flipped verdict
        from audit.storage.models import Result

        stored = session.query(Result).filter(Result.audit_id == runs[1]).one()
        flipped = "pass" if results["verdict"] == "fail" else "fail"
        stored.document = {**stored.document, "verdict": flipped}
        session.flush()
        alerts = raise_alerts(session=session, audit_id=runs[1])
        assert [a.kind for a in alerts] == ["verdict_changed"]

    sign_in(client, admin)
    page = client.get("/ui/schedules").text
    assert 'id="alerts"' in page and "verdict changed" in page
    assert f'href="/ui/audits/{runs[1]}"' in page
    assert "not available" not in page
    run_page = client.get(f"/ui/audits/{runs[1]}").text
    assert "<h2>Alerts</h2>" in run_page and "verdict changed" in run_page
    assert f"{results['verdict']} → {flipped}" in run_page
    first_page = client.get(f"/ui/audits/{runs[0]}").text
    assert "No alert: this run kept the verdict" in first_page
    listed = client.get(f"/v1/schedules/{schedule['id']}/alerts", headers=auth(admin)).json()
    assert [(a["kind"], a["audit_id"]) for a in listed["data"]] == [("verdict_changed", runs[1])]


@pytest.fixture
def allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the app's settings are made (request it before ``client``)."""
    monkeypatch.setenv("BIASAUDIT_WEBHOOK_ALLOWLIST", "127.0.0.1")


def test_schedule_form_takes_a_webhook_checked_like_the_api_secret_shown_once(
    allowlist: None,
    client: TestClient,
    make_token: Callable[..., str],
    api_settings: Settings,
    dataset_id: str,
) -> None:
    import json

    from sqlalchemy import select

    from audit.storage.alerts import webhook_secret
    from audit.storage.models import Schedule

    admin = make_token("admin")
    csrf = sign_in(client, admin)
    page = client.get("/ui/schedules").text
    assert 'name="webhook"' in page and "Alert webhook" in page
    form = {
        "name": "weekly",
        "cron": "0 3 * * 1",
        "spec": json.dumps(spec_for(dataset_id)),
        "webhook": "https://evil.example.org/hook",
    }
    assert client.post("/ui/schedules", data=form).status_code == 403  # no CSRF token
    refused = client.post("/ui/schedules", data={**form, "csrf_token": csrf})
    assert refused.status_code == 422
    # the API's own message, word for word, naming the field
    api = client.post(
        "/v1/schedules",
        json={**{k: form[k] for k in ("name", "cron")}, "spec": spec_for(dataset_id),
              "alert": {"webhook": form["webhook"]}},
        headers=auth(admin),
    )  # fmt: skip
    assert api.status_code == 422 and api.json()["field"] == "alert.webhook"
    assert api.json()["detail"] in refused.text.replace("&#39;", "'")
    assert "alert.webhook: host 'evil.example.org' is not on" in refused.text.replace("&#39;", "'")
    with db.session_scope(api_settings.db_url) as session:
        assert session.scalars(select(Schedule)).all() == []
    bad_scheme = client.post(
        "/ui/schedules", data={**form, "webhook": "ftp://127.0.0.1/", "csrf_token": csrf}
    )
    assert bad_scheme.status_code == 422 and "not an http:// or https:// URL" in bad_scheme.text

    created = client.post(
        "/ui/schedules",
        data={**form, "webhook": "http://127.0.0.1:9/hook", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    with db.session_scope(api_settings.db_url) as session:
        row = session.scalars(select(Schedule)).one()
        assert row.alert == {"webhook": "http://127.0.0.1:9/hook"}
        assert row.webhook_salt
        secret = webhook_secret(row.webhook_salt, api_settings.secret_key.get_secret_value())
    assert 'id="webhook-secret"' in created.text and secret in created.text
    again = client.get("/ui/schedules")
    assert again.status_code == 200 and secret not in again.text  # shown once
    assert "http://127.0.0.1:9/hook" in again.text
    listed = client.get("/v1/schedules", headers=auth(admin)).json()["data"]
    assert [s["webhook_secret"] for s in listed] == [None]
    # without a webhook the form answers with a redirect, as before
    plain = client.post(
        "/ui/schedules",
        data={**form, "name": "monthly", "webhook": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/ui/schedules"


def test_schedule_form_takes_settle_seconds_checked_like_the_api_and_changes_it(
    client: TestClient,
    make_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    api_settings: Settings,
    dataset_id: str,
) -> None:
    import json
    from datetime import datetime, timedelta

    from tests.audit.api.test_schedule_alerts import plant_previous_window, source_spec

    monkeypatch.setenv("BIASAUDIT_SOURCE_HIRING_URL", "sqlite:///never-opened-here.db")
    admin = make_token("admin")
    csrf = sign_in(client, admin)
    assert 'name="settle_seconds"' in client.get("/ui/schedules").text
    form = {"name": "weekly", "cron": "0 3 * * 1", "spec": json.dumps(source_spec())}
    api_body = {**form, "spec": source_spec()}
    for bad in ("-1", "2592001", "soon"):
        refused = client.post(
            "/ui/schedules", data={**form, "settle_seconds": bad, "csrf_token": csrf}
        )
        assert refused.status_code == 422, (bad, refused.text)
        api = client.post("/v1/schedules", json={**api_body, "settle_seconds": bad},
                          headers=auth(admin))  # fmt: skip
        assert api.status_code == 422 and api.json()["field"] == "settle_seconds"
        assert api.json()["detail"] in refused.text.replace("&#39;", "'"), (bad, refused.text)
    assert client.post("/ui/schedules", data={**form, "settle_seconds": "3600"}).status_code == 403
    created = client.post(
        "/ui/schedules",
        data={**form, "settle_seconds": "3600", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    [row] = client.get("/v1/schedules", headers=auth(admin)).json()["data"]
    assert row["settle_seconds"] == 3600
    page = client.get("/ui/schedules").text
    assert 'name="settle_seconds" type="number" min="0" max="2592000" step="1" value="3600"' in page
    blank = client.post(
        "/ui/schedules",
        data={**form, "name": "daily", "settle_seconds": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert blank.status_code == 303  # blank: the API's default
    settle_url = f"/ui/schedules/{row['id']}/settle"
    assert client.post(settle_url, data={"settle_seconds": "60"}).status_code == 403  # no CSRF
    refused = client.post(settle_url, data={"settle_seconds": "soon", "csrf_token": csrf})
    api = client.patch(f"/v1/schedules/{row['id']}", json={"settle_seconds": "soon"},
                       headers=auth(admin))  # fmt: skip
    assert refused.status_code == 422 and api.status_code == 422
    assert api.json()["detail"] in refused.text.replace("&#39;", "'")
    # after a run whose window ended a week and an hour before the next due time
    due = datetime.fromisoformat(row["next_run_at"])
    run = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(admin)).json()["id"]
    last_end = (due - timedelta(days=7, hours=1)).isoformat()
    plant_previous_window(api_settings.db_url, row["id"], run, last_end)
    inverted = client.post(settle_url, data={"settle_seconds": "700000", "csrf_token": csrf})
    assert inverted.status_code == 422
    assert "settle_seconds: 700000 would end the next window" in inverted.text
    assert f"use at most {7 * 86400 + 3600 - 1}" in inverted.text
    changed = client.post(
        settle_url, data={"settle_seconds": "7200", "csrf_token": csrf}, follow_redirects=False
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/ui/schedules"
    assert (
        client.get(f"/v1/schedules/{row['id']}", headers=auth(admin)).json()["settle_seconds"]
        == 7200
    )
    assert 'value="7200"' in client.get("/ui/schedules").text
    other = make_token("admin", project="other")
    assert client.patch(f"/v1/schedules/{row['id']}", json={"settle_seconds": 1},
                        headers=auth(other)).status_code == 404  # fmt: skip
