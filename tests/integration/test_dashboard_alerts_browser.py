"""Alerts in the dashboard, in headless Chromium, against real ``serve`` + ``worker`` + ``beat``.

An admin creates, in the page, a schedule whose ``dataset.source`` reads a
PostgreSQL decisions database (the server-configured read-only source
``hiring``) with a webhook; the page shows the webhook's secret once and the
test's receiver takes it. The running beat fires the schedule: the first run
passes. New decisions with a planted disparity arrive; the next scheduled run
fails. The admin sees the alert on the schedules page, delivered to the
receiver (HMAC checked), and the reviewer sees it on the failing run's page.
Screenshots (1280 and 390 px) go where the sibling browser test puts them.

The schedule's cron is daily; the test makes it due by moving ``next_run_at``
to now, so the beat (a 2 s tick) fires it without waiting for the clock.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from croniter import croniter
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select, update

from audit.storage import session_scope
from audit.storage.models import Audit, Schedule, utcnow
from tests.integration.conftest import Stack, wait_for
from tests.integration.decisions import decisions_database, insert_decisions, source_spec
from tests.integration.test_dashboard_browser import CHROMIUM, _shoot, _shots, _sign_in, _tokens
from tests.workers.test_alerts import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

CRON = "0 3 * * *"


def test_alert_of_a_failing_scheduled_run_in_a_browser(local: Stack, tmp_path: Path) -> None:
    with decisions_database() as (decisions, source_url):
        receiver = Receiver([])
        env = {
            "BIASAUDIT_SOURCE_HIRING_URL": source_url,
            "BIASAUDIT_WEBHOOK_ALLOWLIST": "127.0.0.1",
        }
        try:
            _, base, _ = local.worker_and_api(
                "alerts-ui-worker", "alerts-ui-api", api_extra=env, extra=env
            )
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
                try:
                    tokens = _tokens()
                    admin = _sign_in(browser, base, tokens["admin"])
                    schedule_id = _create_schedule(admin, base, receiver)
                    second = _two_runs(schedule_id, decisions)
                    _admin_sees_the_alert(admin, base, receiver, second, _shots(tmp_path))
                    reviewer = _sign_in(browser, base, tokens["reviewer"])
                    _reviewer_sees_the_alert(reviewer, base, second, _shots(tmp_path))
                finally:
                    browser.close()
        finally:
            receiver.server.shutdown()
            receiver.server.server_close()


def _create_schedule(page: Page, base: str, receiver: Receiver) -> str:
    page.goto(f"{base}/ui/schedules")
    page.get_by_label("Name").fill("hiring-decisions")
    page.get_by_label("Cron expression (five fields, UTC)").fill(CRON)
    page.get_by_label("Audit spec (JSON, as for POST /v1/audits)").fill(
        json.dumps(source_spec("hiring-decisions"))
    )
    page.get_by_label("Alert webhook").fill(receiver.url)
    page.get_by_role("button", name="Create schedule").click()
    page.wait_for_load_state()
    secret = page.locator("#webhook-secret-value").inner_text().strip()
    assert len(secret) == 64, page.content()[:2000]
    receiver.secret = secret
    page.reload()  # shown once: not on the page any more
    assert page.locator("#webhook-secret").count() == 0
    with session_scope() as session:
        row = session.scalars(select(Schedule).where(Schedule.name == "hiring-decisions")).one()
        assert row.alert == {"webhook": receiver.url}
        return row.id


def _fire_now(schedule_id: str, *, after: set[str]) -> Audit:
    """Make the schedule due; the running beat fires it and the worker runs it."""
    with session_scope() as session:
        session.execute(
            update(Schedule).where(Schedule.id == schedule_id).values(next_run_at=utcnow())
        )

    def finished() -> Audit | None:
        with session_scope() as session:
            rows = session.scalars(select(Audit).where(Audit.schedule_id == schedule_id)).all()
            done = [r for r in rows if r.id not in after and r.status in ("succeeded", "failed")]
            for row in done:
                session.expunge(row)
            return done[0] if done else None

    audit: Audit = wait_for(finished, timeout=150, what="the scheduled run", step=0.5)
    assert audit.status == "succeeded", audit.error
    return audit


def _two_runs(schedule_id: str, decisions: str) -> str:
    now = utcnow()
    start = croniter(CRON, now).get_prev(datetime)  # the first window opens at the last 03:00
    fair = {"female": (1500, 600), "male": (1500, 620)}
    insert_decisions(decisions, start + (now - start) / 2, fair)
    first = _fire_now(schedule_id, after=set())
    assert first.verdict == "pass"
    end = datetime.fromisoformat(first.spec["dataset"]["window_end"])
    # new decisions: women advanced at 0.15, men at 0.41 (impact ratio 0.37)
    insert_decisions(
        decisions, end + timedelta(milliseconds=1), {"female": (1500, 225), "male": (1500, 620)}
    )
    second = _fire_now(schedule_id, after={first.id})
    assert second.verdict == "fail"
    return second.id


def _admin_sees_the_alert(
    page: Page, base: str, receiver: Receiver, second: str, shots: Path
) -> None:
    def delivered() -> bool:
        page.goto(f"{base}/ui/schedules")
        table = page.locator("table.alerts")  # absent until the run's alert is raised
        return table.count() == 1 and "delivered" in table.inner_text()

    wait_for(delivered, timeout=60, what="the alert to be delivered", step=1)
    row = page.locator("table.alerts tbody tr").first
    text = row.inner_text()
    assert "verdict changed" in text and "pass → fail" in text and "previous" in text
    assert row.locator(f'a[href="/ui/audits/{second}"]').count() == 1
    count = page.locator("table.schedules tbody tr").first.locator("a[href='#alerts']")
    assert count.inner_text().strip() == "1"
    assert [r["valid"] for r in receiver.received] == [True]
    assert receiver.received[0]["body"]["audit_id"] == second
    page.locator("#alerts").scroll_into_view_if_needed()
    _shoot(page, shots, "schedules-alert")


def _reviewer_sees_the_alert(page: Page, base: str, second: str, shots: Path) -> None:
    page.goto(f"{base}/ui/audits/{second}")
    section = page.locator("section#alerts")
    assert section.is_visible()
    text = section.inner_text()
    assert "verdict changed" in text and "pass → fail" in text and "delivered" in text
    section.scroll_into_view_if_needed()
    _shoot(page, shots, "audit-alert")
