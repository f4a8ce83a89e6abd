"""Late rows on PostgreSQL: ``settle_seconds`` moves the window back; a re-check raises
``late_rows`` when the previous window gained rows after it was audited.

Decisions carry their decision time; they may reach the source database later
than that. A window ending ``settle_seconds`` before the due time still reads
rows that arrive up to that late. Rows that arrive later still, for a window
that already ran, are counted again at the next run: the run gets an alert of
kind ``late_rows`` naming the window and both counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from audit.storage import repo, session_scope
from audit.storage.alerts import list_alerts
from audit.storage.models import Event, utcnow
from tests.workers.test_source_window import _fire, _insert, _spec, decisions  # noqa: F401

pytestmark = pytest.mark.postgres


def test_settled_windows_read_late_rows_and_a_recheck_raises_late_rows(
    decisions: str,  # noqa: F811 - the fixture imported above
) -> None:
    settle = timedelta(hours=1)
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1",
            spec=_spec(), now=utcnow() - timedelta(days=15),
        )  # fmt: skip
        schedule.settle_seconds = int(settle.total_seconds())
        schedule_id, due1 = schedule.id, schedule.next_run_at
    assert due1 is not None
    _insert(decisions, due1 - timedelta(hours=2), female_rate=0.35, seed=1, n=3000)
    _insert(decisions, due1 - timedelta(minutes=30), female_rate=0.35, seed=2, n=1000)
    first = _fire(schedule_id)
    assert (first.status, first.verdict) == ("succeeded", "pass"), first.error
    window = first.spec["dataset"]
    assert window["window_end"] == (due1 - settle).isoformat()  # settled: an hour back
    with session_scope() as session:
        results = repo.get_results(session=session, project="acme", audit_id=first.id)
        assert results is not None
        assert results["manifest"]["dataset_source"]["rows"] == 3000  # the last hour waits

    # 250 decisions of the first window reach the database only now: too late even
    # for the settled window. The next run reads its own window and counts the old one again.
    _insert(decisions, due1 - timedelta(hours=1, minutes=30), female_rate=0.35, seed=3, n=250)
    second = _fire(schedule_id, due=utcnow() - timedelta(seconds=1))
    assert second.status == "succeeded", second.error
    assert second.spec["dataset"]["window_start"] == window["window_end"]
    with session_scope() as session:
        results = repo.get_results(session=session, project="acme", audit_id=second.id)
        assert results is not None
        assert results["manifest"]["dataset_source"]["rows"] == 1000  # the settled rows
        alerts = list_alerts(session=session, project="acme", audit_id=second.id)
        late = [a for a in alerts if a.kind == "late_rows"]
        assert len(late) == 1, [a.kind for a in alerts]
        details: dict[str, Any] = late[0].details
        assert details == {
            "against": "previous",
            "against_audit_id": first.id,
            "window_start": window["window_start"],
            "window_end": window["window_end"],
            "rows_then": 3000,
            "rows_now": 3250,
            "late": 250,
        }
        assert late[0].delivery is None  # no webhook on this schedule
        logged = session.query(Event).filter(Event.action == "alert.raised").all()
        kinds = [(e.detail or {}).get("kind") for e in logged if e.audit_id == second.id]
        assert kinds.count("late_rows") == 1
