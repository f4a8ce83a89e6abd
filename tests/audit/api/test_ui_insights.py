"""Dashboard compare, history, schedules and event-log pages (roles, CSRF, planted changes)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Schedule
from audit.storage.repo import create_audit
from audit.ui.trail import COMPARE_MODULE, EVENTS_MODULE, trail_module
from tests.audit.api.helpers import auth, finish_audit, make_csv, spec_for, upload
from tests.audit.api.ui_helpers import sign_in

pytestmark = pytest.mark.postgres


def _fair_csv(rows: int = 400) -> bytes:
    """The same applicants as :func:`make_csv`, women selected at 48% instead of 25% (men 50%)."""
    lines = ["sex,race,qualified,advanced"]
    for i in range(rows):
        sex = "female" if i % 2 else "male"
        race = ("Black", "White", "Asian")[i % 3]
        selected = i % 4 < 2 if sex == "male" else (i // 2) % 25 < 12
        lines.append(f"{sex},{race},{(i // 3) % 2},{int(selected)}")
    return ("\n".join(lines) + "\n").encode()


def _audit(client: TestClient, token: str, content: bytes, url: str, name: str) -> str:
    dataset = upload(client, token, content).json()["id"]
    answer = client.post("/v1/audits", json=spec_for(dataset, name=name), headers=auth(token))
    audit_id = str(answer.json()["id"])
    finish_audit(url, audit_id)
    return audit_id


def _row(html: str, group: str, metric: str) -> str:
    for row in re.findall(r"<tr[^>]*>.*?</tr>", html, flags=re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        if len(cells) > 2 and cells[1] == group and cells[2] == metric and cells[0] == "sex":
            return row
    raise AssertionError(f"no row for {group} {metric}")


def test_compare_shows_a_planted_change(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    submitter = make_token("submitter")
    before = _audit(client, submitter, make_csv(), api_settings.db_url, "before")
    after = _audit(client, submitter, _fair_csv(), api_settings.db_url, "after")
    sign_in(client, make_token("reviewer"))
    picker = client.get("/ui/compare")
    assert picker.status_code == 200 and before in picker.text and after in picker.text
    page = client.get(f"/ui/compare?a={before}&b={after}")
    assert page.status_code == 200
    row = _row(page.text, "female", "impact_ratio")
    assert "status-fail" in row.split("→")[0] and "status-pass" in row.split("→")[1]
    # With the compare API's test: significant; without it: the two 95% CIs do not overlap.
    assert "<td>yes</td>" in row
    same = client.get(f"/ui/compare?a={before}&b={before}").text
    assert "<td>yes</td>" not in _row(same, "female", "impact_ratio")
    tested = trail_module(COMPARE_MODULE, "compare_results") is not None
    assert ('id="significance"' in page.text) is tested
    assert ('id="significance-note"' in page.text) is not tested
    assert client.get(f"/ui/compare?a={before}&b=nope").status_code == 404


def test_history_of_a_schedule_draws_the_trend(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings, dataset_id: str
) -> None:
    admin = make_token("admin")
    csrf = sign_in(client, admin)
    spec = spec_for(dataset_id, name="quarterly")
    made = client.post(
        "/ui/schedules",
        data={
            "name": "quarterly",
            "cron": "0 3 1 */3 *",
            "spec": json.dumps(spec),
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    with db.session_scope(api_settings.db_url) as session:
        schedule = session.scalars(select(Schedule)).one()
        stored_spec, schedule_id = schedule.spec, schedule.id
        runs = [
            create_audit(
                session=session,
                project="acme",
                spec=stored_spec,
                name="quarterly",
                domain="hiring",
                spec_sha256="0" * 64,
                schedule_id=schedule_id,
            ).id
            for _ in range(2)
        ]
    for run in runs:
        finish_audit(api_settings.db_url, run)
    page = client.get(f"/ui/history?schedule={schedule_id}")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart trend"') == 3  # sex, race and their intersection
    assert page.text.count('data-group="female"') == 1
    assert all(f"/ui/audits/{run}" in page.text for run in runs)
    assert client.get("/ui/history?model=zz").status_code == 422
    unknown = client.get("/ui/history?model=" + "a" * 64)
    assert unknown.status_code == 200 and "No succeeded runs yet" in unknown.text
    picker = client.get("/ui/history")
    assert picker.status_code == 200 and f'value="{schedule_id}"' in picker.text


def test_schedules_page_creates_refuses_and_disables(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings, dataset_id: str
) -> None:
    csrf = sign_in(client, make_token("admin"))
    form = {"name": "weekly", "cron": "0 3 * * 1", "spec": json.dumps(spec_for(dataset_id))}
    assert client.post("/ui/schedules", data=form).status_code == 403  # no CSRF token
    bad_cron = client.post("/ui/schedules", data={**form, "cron": "every day", "csrf_token": csrf})
    assert bad_cron.status_code == 422 and "cron:" in bad_cron.text
    bad_spec = client.post("/ui/schedules", data={**form, "spec": "{", "csrf_token": csrf})
    assert bad_spec.status_code == 422 and "spec: not valid JSON" in bad_spec.text
    deep = client.post(
        "/ui/schedules", data={**form, "spec": "[" * 70 + "]" * 70, "csrf_token": csrf}
    )
    assert deep.status_code == 422 and "nested deeper" in deep.text
    assert client.post("/ui/schedules", data={**form, "csrf_token": csrf}).status_code == 200
    page = client.get("/ui/schedules").text
    assert "weekly" in page and "0 3 * * 1" in page
    with db.session_scope(api_settings.db_url) as session:
        schedule_id = session.scalars(select(Schedule.id)).one()
    url = f"/ui/schedules/{schedule_id}/disable"
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf_token": csrf}).status_code == 200
    with db.session_scope(api_settings.db_url) as session:
        assert session.scalars(select(Schedule.enabled)).one() is False
    client.cookies.clear()
    sign_in(client, make_token("reviewer"))
    assert client.get("/ui/schedules").status_code == 403


def test_event_log_page_is_for_reviewers_and_admins(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    sign_in(client, make_token("reviewer"))
    page = client.get("/ui/events")
    assert page.status_code == 200
    has_log = trail_module(EVENTS_MODULE, "list_events", "event_dict") is not None
    assert ('id="events-unavailable"' in page.text) is not has_log
    assert client.get("/ui/events?page=0").status_code == 422
    assert client.get("/ui/events?audit_id=" + "x" * 40).status_code == 422
    client.cookies.clear()
    sign_in(client, make_token("submitter"))
    assert client.get("/ui/events").status_code == 403
