"""Two beat processes, one run per due time; a beat down across due times runs once on restart.

Real processes (spawned, each with its own database connections) against the
session's PostgreSQL database; the firing is ``fire_due_schedules``, the
function ``biasaudit beat`` runs on every tick.
"""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from audit.storage import repo, session_scope
from audit.storage.models import Audit, Schedule, utcnow
from tests.factories import spec_for
from tests.workers.conftest import add_dataset

pytestmark = pytest.mark.postgres


def _beat(barrier: Any, out: Any) -> None:
    from workers.scheduling import fire_due_schedules

    barrier.wait(timeout=60)
    out.put(fire_due_schedules(publish=lambda *a, **k: None))


def _two_beats() -> list[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_beat, args=(barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


@pytest.mark.slow
def test_two_beats_one_run_and_missed_periods_run_once(service_env: dict[str, Any]) -> None:
    dataset = add_dataset(service_env["data"])
    with session_scope() as session:  # weekly; created 8 weeks ago: 8 due times missed
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1",
            spec=spec_for(dataset), now=utcnow() - timedelta(weeks=8),
        )  # fmt: skip
        schedule_id = schedule.id
    results = _two_beats()
    assert sorted(len(r) for r in results) == [0, 1]
    with session_scope() as session:
        runs = session.scalar(
            select(func.count()).select_from(Audit).where(Audit.schedule_id == schedule_id)
        )
        assert runs == 1  # once on restart, not once per missed week
        row = session.get(Schedule, schedule_id)
        assert row is not None and row.next_run_at is not None
        assert utcnow() < row.next_run_at <= utcnow() + timedelta(weeks=1)
    assert _two_beats() == [[], []]  # not due again until the next cron time
