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
