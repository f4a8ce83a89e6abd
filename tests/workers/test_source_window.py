"""Scheduled audits over a growing PostgreSQL table of decisions (``dataset.source``).

The decisions database is created in the test through the admin connection.
The first run's window holds fair decisions (pass); new decisions with a
planted disparity arrive before the second due time, so the second run reads
only them (its window starts where the first ended) and fails: an alert is
raised. The query runs read-only: a data-modifying one fails the audit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import update

from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.alerts import list_alerts
from audit.storage.models import Audit, Schedule, utcnow
from tests.workers.conftest import source_database
from workers import runner
from workers.scheduling import fire_due_schedules

pytestmark = pytest.mark.postgres

QUERY = (
    "select sex, race, qualified, advanced from decisions "
    "where decided_at >= :window_start and decided_at < :window_end"
)


@pytest.fixture
def decisions(service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database with an empty ``decisions`` table: its psycopg URL."""
    with source_database(monkeypatch, "hiring") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "create table decisions (decided_at timestamptz, sex text, race text, "
                "qualified int, advanced int)"
            )
            conn.execute(  # a function that writes: a read-only transaction refuses it
                "create function wipe() returns int language plpgsql as "
                "$$ begin delete from decisions; return 0; end $$"
            )
        yield url


def _insert(url: str, at: datetime, *, female_rate: float, seed: int, n: int = 4000) -> None:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n)
    rate = np.where(sex == "female", female_rate, 0.35)
    rows = [
        (at, str(s), str(r), int(q), int(a))
        for s, r, q, a in zip(
            sex,
            rng.choice(["Black", "White", "Asian"], size=n),
            rng.integers(0, 2, size=n),
            rng.random(n) < rate,
            strict=True,
        )
    ]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany("insert into decisions values (%s, %s, %s, %s, %s)", rows)


def service_env_data(_: str) -> list[str]:
    from audit.engine.confine import project_roots

    folder = project_roots(get_settings(), "acme").project / ".sources"
    return sorted(p.name for p in folder.glob("*"))  # counted at the source: none written


def _spec(query: str = QUERY) -> dict[str, Any]:
    return {
        "name": "hiring-decisions",
        "domain": "hiring",
        "dataset": {
            "source": "hiring",
            "query": query,
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race"],
        },
        "probes": [{"kind": "demographic"}],
    }


def _fire(schedule_id: str, *, due: datetime | None = None) -> Audit:
    if due is not None:
        with session_scope() as session:
            session.execute(
                update(Schedule).where(Schedule.id == schedule_id).values(next_run_at=due)
            )
    created = fire_due_schedules(publish=lambda *a, **k: None)
    assert len(created) == 1
    runner.execute_audit(created[0], worker="w1")
    with session_scope() as session:
        audit = session.get(Audit, created[0])
        assert audit is not None
        session.expunge(audit)
        return audit


def test_new_rows_in_the_window_change_the_verdict(decisions: str) -> None:
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1",
            spec=_spec(), now=utcnow() - timedelta(days=15),
        )  # fmt: skip
        schedule_id, due1 = schedule.id, schedule.next_run_at
    assert due1 is not None
    _insert(decisions, due1 - timedelta(days=1), female_rate=0.35, seed=1)  # first window
    first = _fire(schedule_id)
    assert (first.status, first.verdict) == ("succeeded", "pass"), first.error
    assert first.spec["dataset"]["window_end"] == due1.isoformat()

    _insert(decisions, due1 + timedelta(days=1), female_rate=0.15, seed=2)  # new decisions
    second = _fire(schedule_id, due=utcnow() - timedelta(seconds=1))
    assert (second.status, second.verdict) == ("succeeded", "fail"), second.error
    assert second.spec["dataset"]["window_start"] == due1.isoformat()
    copies = service_env_data(decisions)
    assert copies == []  # the rows copied for a run are deleted after it
    with session_scope() as session:
        results = repo.get_results(session=session, project="acme", audit_id=second.id)
        assert results is not None
        source = results["manifest"]["dataset_source"]
        assert (source["source"], source["rows"]) == ("hiring", 4000)  # only the new rows
        assert source["window_start"] == due1.isoformat() and "decided_at" in source["query"]
        assert "postgresql" not in json.dumps(results)  # never the URL
        alerts = list_alerts(session=session, project="acme", schedule_id=schedule_id)
        assert [(a.kind, a.audit_id) for a in alerts] == [("verdict_changed", second.id)]


def test_query_runs_read_only(decisions: str) -> None:
    query = "select sex, race, qualified, advanced, wipe() as w from decisions"
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1",
            spec=_spec(query), now=utcnow() - timedelta(days=8),
        )  # fmt: skip
        schedule_id, due = schedule.id, schedule.next_run_at
    assert due is not None
    _insert(decisions, due - timedelta(days=1), female_rate=0.35, seed=1, n=10)
    audit = _fire(schedule_id)
    assert audit.status == "failed"
    assert audit.error is not None and "read-only transaction" in audit.error
    with psycopg.connect(decisions) as conn:
        assert conn.execute("select count(*) from decisions").fetchone() == (10,)
