"""The dashboard in headless Chromium against a real ``serve`` + ``worker`` (PostgreSQL, Redis).

A reviewer signs in, filters the list, opens an audit, sees its chart and group
table and approves it; a submitter cannot approve; a POST without the CSRF
token is refused; another tenant's audit is 404. An admin creates a schedule
in the page, the beat fires it, and its history shows the run. On the data page a
reviewer sees no Delete link; a submitter deletes a dataset after typing its id. Screenshots of
every page at 1280 and 390 px go to ``BIASAUDIT_SCREENSHOT_DIR`` (default: the
test's tmp dir; docs/dashboard.md says how to refresh docs/screenshots/).

Plain ``sync_playwright`` with Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import select, update

from audit.storage import repo, session_scope
from audit.storage.models import Audit, Schedule, utcnow
from audit.ui.trail import EVENTS_MODULE, trail_module
from tests.factories import spec_for
from tests.integration.conftest import Stack, submit_pool, wait_for, wait_status
from tests.pdf_tools import pdf_text

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

CHROMIUM = "/usr/bin/chromium"
WIDTHS = {1280: 900, 390: 844}
# Page actions and navigations wait this long (ms): on a loaded 2-core machine a server
# round trip or a Chromium redraw takes seconds (Playwright's default: 30 s).
WAIT_MS = 90_000
# Read at import: the ``local`` fixture clears every BIASAUDIT_* variable of the test process.
SCREENSHOT_DIR = os.environ.get("BIASAUDIT_SCREENSHOT_DIR")


def _shots(tmp_path: Path) -> Path:
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(page: Page, path: Path) -> None:
    """A screenshot as a small palette PNG (the docs keep them; UI colours fit in 128)."""
    from PIL import Image

    page.screenshot(path=str(path))
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=128, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def _shoot(page: Page, folder: Path, name: str) -> None:
    """The page's viewport at desktop and phone width (then back to desktop)."""
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        _save(page, folder / f"{name}-{width}.png")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} scrolls sideways at {width} px ({overflow} px)"
    page.set_viewport_size({"width": 1280, "height": 900})


def _context(browser: Browser, **options: Any) -> BrowserContext:
    context = browser.new_context(**options)
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    return context


def _sign_in(browser: Browser, base: str, token: str) -> Page:
    page = _context(browser, viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{base}/ui/")
    assert "/ui/login" in page.url
    # the token field has focus on arrival (autofocus): wait for it, then keyboard only
    page.wait_for_function("document.activeElement && document.activeElement.id === 'token'")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/ui/")
    return page


def _tokens() -> dict[str, str]:
    # projects of their own: other integration tests share the database (and "acme")
    acme, globex = f"acme-{uuid.uuid4().hex[:8]}", f"globex-{uuid.uuid4().hex[:8]}"
    people = {
        "submitter": (acme, "submitter", "Sam Submitter <sam@acme.test>"),
        "reviewer": (acme, "reviewer", "Rita Reviewer <rita@acme.test>"),
        "admin": (acme, "admin", "Ada Admin <ada@acme.test>"),
        "other": (globex, "reviewer", "Otto Other <otto@globex.test>"),
    }
    out = {}
    with session_scope() as session:
        for key, (project, role, name) in people.items():
            out[key], _ = repo.create_token(session=session, project=project, role=role, name=name)
    return out


def test_dashboard_in_a_browser(local: Stack, tmp_path: Path) -> None:
    _, base, _ = local.worker_and_api("ui-worker", "ui-api")
    tokens = _tokens()
    headers = {"Authorization": f"Bearer {tokens['submitter']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        first, second = submit_pool(api, tmp_path), _submit_fixed_pool(api, tmp_path)
        for audit_id in (first, second):
            wait_status(audit_id, {"succeeded"}, timeout=180)
        shots = _shots(tmp_path)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                _reviewer_journey(browser, base, tokens, shots, first, second)
                _refusals(browser, base, tokens, first, second)
                _admin_journey(browser, base, tokens, shots, first)
                _data_journey(browser, base, tokens, shots, _upload_spare(api, tmp_path))
            finally:
                browser.close()
        reviews = api.get(f"/v1/audits/{first}/reviews").json()["data"]
        assert [(r["decision"], r["reviewer"]) for r in reviews] == [
            ("approve", "Rita Reviewer <rita@acme.test>")
        ]
        assert api.get(f"/v1/audits/{second}/reviews").json()["count"] == 0


def _submit_fixed_pool(api: httpx.Client, tmp_path: Path) -> str:
    """The same applicants with the planted gap removed (women advanced at the men's 0.45):
    a change the compare page must call significant."""
    import numpy as np
    import pandas as pd

    from tests.factories import write_pool

    pool = write_pool(tmp_path / "fixed.csv")
    frame = pd.read_csv(pool)
    women = (frame["sex"] == "female").to_numpy()
    redraw = np.random.default_rng(11).random(len(frame)) < 0.45
    frame.loc[women, "advanced"] = redraw[women].astype(int)
    frame.to_csv(pool, index=False)
    upload = api.post("/v1/datasets", files={"file": (pool.name, pool.read_bytes(), "text/csv")})
    assert upload.status_code == 201, upload.text
    submitted = api.post("/v1/audits", json=spec_for(upload.json()["id"]))
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["id"])


def _reviewer_journey(
    browser: Browser, base: str, tokens: dict[str, str], shots: Path, first: str, second: str
) -> None:
    login = _context(browser).new_page()
    login.goto(f"{base}/ui/login")
    _shoot(login, shots, "login")
    page = _sign_in(browser, base, tokens["reviewer"])
    rows = page.locator("table.audits tbody tr")
    assert rows.count() == 2
    page.keyboard.press("Tab")  # keyboard users: the skip link comes first, with a visible focus
    focused = page.evaluate(
        "(e => [e.textContent, getComputedStyle(e).outlineStyle])(document.activeElement)"
    )
    assert focused == ["Skip to content", "solid"]
    page.get_by_label("Review").select_option("awaiting")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**review=awaiting**")
    assert rows.count() == 2 and page.locator(".badge-awaiting").count() == 2
    _shoot(page, shots, "audits")
    page.locator(f'a[href="/ui/audits/{first}"]').click()
    page.wait_for_url(f"**/ui/audits/{first}")
    assert page.locator("#summary").is_visible()
    assert page.locator("svg.chart rect.bar").first.is_visible()
    assert page.locator("table.groups").first.is_visible()
    assert "Impact ratio" in page.locator("table.groups").first.inner_text()
    _shoot(page, shots, "audit")
    page.locator("figure.chart-wrap").first.scroll_into_view_if_needed()
    _save(page, shots / "audit-chart-1280.png")
    page.get_by_label("Approve").check()
    page.get_by_label("Comment (optional)").fill("Gap for women documented; mitigation filed.")
    page.get_by_role("button", name="Submit review").click()
    page.wait_for_url(f"**/ui/audits/{first}#reviews")
    reviews = page.locator("ol.reviews").inner_text()
    assert "approved" in reviews and "Rita Reviewer" in reviews
    report = page.request.get(f"{base}/ui/audits/{first}/report")
    assert report.status == 200 and "Local Law 144" in report.text()
    # laid out on this first read (seconds of CPU; under load more than the default 30 s)
    pdf = page.request.get(f"{base}/ui/audits/{first}/report?format=pdf", timeout=WAIT_MS)
    assert pdf.status == 200 and pdf.headers["content-type"].startswith("application/pdf")
    text = pdf_text(pdf.body(), Path(tempfile.mkdtemp()))
    assert "Rita Reviewer" in text and "approved" in text.lower()
    page.goto(f"{base}/ui/?review=approved")
    assert rows.count() == 1 and page.locator(f'a[href="/ui/audits/{first}"]').count() == 1
    page.goto(f"{base}/ui/compare?a={second}&b={first}")
    assert page.locator("table.compare tbody tr").count() > 0
    notice = page.locator("#significance").inner_text()  # the planted change: significant
    assert int(notice.split()[0]) >= 1, notice
    _shoot(page, shots, "compare")
    page.goto(f"{base}/ui/events")
    if trail_module(EVENTS_MODULE, "list_events", "event_dict") is None:
        assert page.locator("#events-unavailable").is_visible()
    else:  # the approval is in the event log, by name
        log = page.locator("table.events").inner_text()
        assert "audit.reviewed" in log and "Rita Reviewer" in log
    _shoot(page, shots, "events")
    # A POST without the CSRF token is refused, with the session cookie present.
    refused = page.request.post(f"{base}/ui/audits/{second}/review", form={"decision": "approve"})
    assert refused.status == 403


def _refusals(browser: Browser, base: str, tokens: dict[str, str], first: str, second: str) -> None:
    submitter = _sign_in(browser, base, tokens["submitter"])
    submitter.goto(f"{base}/ui/audits/{second}")
    assert submitter.get_by_role("button", name="Submit review").count() == 0
    csrf = submitter.locator('form[action="/ui/logout"] input[name="csrf_token"]').get_attribute(
        "value"
    )
    assert csrf
    forged = submitter.request.post(
        f"{base}/ui/audits/{second}/review", form={"decision": "approve", "csrf_token": csrf}
    )
    assert forged.status == 403
    assert "may not review" in forged.text()
    other = _sign_in(browser, base, tokens["other"])
    assert other.locator("table.audits").count() == 0
    answer = other.goto(f"{base}/ui/audits/{first}")
    assert answer is not None and answer.status == 404


def _admin_journey(
    browser: Browser, base: str, tokens: dict[str, str], shots: Path, audit_id: str
) -> None:
    page = _sign_in(browser, base, tokens["admin"])
    dataset_id = _dataset_of(audit_id)
    page.goto(f"{base}/ui/schedules")
    page.get_by_label("Name").fill("monthly-screening")
    page.get_by_label("Cron expression (five fields, UTC)").fill("* * * * *")
    page.get_by_label("Audit spec (JSON, as for POST /v1/audits)").fill(
        json.dumps(spec_for(dataset_id, name="monthly-screening"))
    )
    # the form posts to the page it is on: wait_for_url would return at once, on the old
    # page, before the answer; wait for the navigation the POST makes
    with page.expect_navigation(url=f"{base}/ui/schedules"):
        page.get_by_role("button", name="Create schedule").click()
    assert "monthly-screening" in page.locator("table.schedules").inner_text()
    history = page.locator("table.schedules a[href^='/ui/history']").get_attribute("href")
    assert history is not None
    schedule_id = history.rsplit("=", 1)[1]
    _make_due(schedule_id)  # as if the minute had passed: the running beat fires it

    def fired() -> bool:
        page.reload()
        return page.locator("table.schedules a[href^='/ui/audits/']").count() == 1

    wait_for(fired, timeout=120, what="the beat to fire the schedule", step=0.5)
    first_run = wait_for(
        lambda: _succeeded_runs(schedule_id, at_least=1), timeout=120, what="the first run"
    )
    _make_due(schedule_id)  # the next minute, at once
    runs = wait_for(
        lambda: _succeeded_runs(schedule_id, at_least=2),
        timeout=120,
        what="two scheduled runs to succeed",
        step=0.5,
    )
    assert set(first_run) < set(runs)
    assert len(runs) >= 2
    page.once("dialog", lambda dialog: dialog.accept())
    # the answer is the same URL again (wait_for_load_state would return at once, on the
    # old page): wait for the navigation the confirmed POST makes
    with page.expect_navigation(url=f"{base}/ui/schedules"):
        page.get_by_role("button", name="Disable").click()
    assert "disabled" in page.locator("table.schedules").inner_text()
    _shoot(page, shots, "schedules")
    page.locator("table.schedules a[href^='/ui/history']").click()
    page.wait_for_url("**/ui/history?schedule=**")
    assert page.locator("svg.trend").count() >= 1
    assert page.locator("svg.trend g.series polyline").count() >= 1  # a line through the runs
    _shoot(page, shots, "history")


def _upload_spare(api: httpx.Client, tmp_path: Path) -> str:
    """A dataset no audit names (the one the data page deletes)."""
    from tests.factories import write_pool

    pool = write_pool(tmp_path / "spare.csv")
    upload = api.post("/v1/datasets", files={"file": (pool.name, pool.read_bytes(), "text/csv")})
    assert upload.status_code == 201, upload.text
    return str(upload.json()["id"])


def _data_journey(
    browser: Browser, base: str, tokens: dict[str, str], shots: Path, spare: str
) -> None:
    """The data page: a reviewer sees no Delete link; the submitter deletes the spare
    dataset after typing its id, sees the notice, and finds it in the deleted view."""
    reviewer = _sign_in(browser, base, tokens["reviewer"])
    reviewer.get_by_role("link", name="Data", exact=True).click()
    reviewer.wait_for_url(f"{base}/ui/data")
    assert reviewer.locator("table.data-datasets tbody tr").count() >= 3
    assert reviewer.locator('a[href$="/delete"]').count() == 0
    page = _sign_in(browser, base, tokens["submitter"])
    page.goto(f"{base}/ui/data")
    row = page.locator(f"#item-{spare}")
    assert "spare.csv" in row.inner_text()
    _shoot(page, shots, "data")
    row.get_by_role("link", name="Delete").click()
    page.wait_for_url(f"**/ui/data/datasets/{spare}/delete")
    page.get_by_label("Type the dataset's id").fill(spare)
    page.get_by_role("button", name="Delete permanently").click()
    page.wait_for_url("**/ui/data?erased=**")
    assert spare in page.locator("#flash").inner_text()
    assert page.locator(f"#item-{spare}").count() == 0
    page.get_by_role("link", name="Deleted", exact=True).click()
    page.wait_for_url("**view=deleted")
    assert "Sam Submitter" in page.locator(f"#item-{spare}").inner_text()


def _make_due(schedule_id: str) -> None:
    """Move the schedule's next run to now (its cron fires each minute; the test waits
    for no minute boundary)."""
    with session_scope() as session:
        session.execute(
            update(Schedule).where(Schedule.id == schedule_id).values(next_run_at=utcnow())
        )


def _succeeded_runs(schedule_id: str, *, at_least: int) -> list[str]:
    with session_scope() as session:
        rows = session.scalars(
            select(Audit.id).where(Audit.schedule_id == schedule_id, Audit.status == "succeeded")
        ).all()
    return list(rows) if len(rows) >= at_least else []


def _dataset_of(audit_id: str) -> str:
    with session_scope() as session:
        audit = repo.load_audit(session=session, audit_id=audit_id)
        assert audit is not None
        return str(audit.spec["dataset"]["id"])
