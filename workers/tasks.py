"""The Celery tasks of the contract. Thin: each takes ids and calls ``workers.runner``.

============================  ===============================================  ===========
name                          arguments                                        queue
============================  ===============================================  ===========
``biasaudit.run_audit``       ``[audit_id]``                                   gpu or cpu
``biasaudit.run_shard``       ``[audit_id, index, start, stop, total, unit]``  cpu
``biasaudit.merge_shards``    ``[shard results, audit_id]`` (chord)            cpu
``biasaudit.reconcile``       ``[]`` (beat)                                    maintenance
``biasaudit.fire_schedules``  ``[]`` (beat)                                    maintenance
``biasaudit.deliver_alert``   ``[alert_id, attempt]``                          cpu
``biasaudit.convert_dataset`` ``[project, dataset_id]``                        cpu
``biasaudit.apply_retention`` ``[]`` (beat, when a retention is set)            maintenance
============================  ===============================================  ===========

``unit`` is ``rows`` (Parquet row groups) or ``bytes`` (a CSV byte range).

Only ids and row or byte numbers travel: no token, secret or spec. Every task is
idempotent, so a redelivered or duplicated message is harmless.
"""

from __future__ import annotations

from typing import Any

from celery import Task, chord

from audit.queue import TASK_CONVERT_DATASET, TASK_RUN_AUDIT
from audit.storage.cache import release_all
from workers import runner, shards
from workers.app import (
    TASK_APPLY_RETENTION,
    TASK_DELIVER_ALERT,
    TASK_FIRE_SCHEDULES,
    TASK_MERGE_SHARDS,
    TASK_RECONCILE,
    TASK_RUN_SHARD,
    app,
)
from workers.columnar import sweep_deleted_copies


def _launch_shards(audit_id: str, shards: list[Any]) -> None:
    """Run the shards in parallel (a chord) and merge their counts when all are done."""
    total = len(shards)
    header = [run_shard.s(audit_id, s.index, s.start, s.stop, total, s.unit) for s in shards]
    chord(header)(merge_shards.s(audit_id))


@app.task(name=TASK_RUN_AUDIT, bind=True, ignore_result=True)
def run_audit(self: Task, audit_id: str) -> str:
    """Claim and run one audit (or launch its shards); see ``runner.execute_audit``."""
    worker = runner.worker_id(self.request.id, self.request.hostname)
    try:
        return runner.execute_audit(str(audit_id), worker=worker, launch_shards=_launch_shards)
    finally:
        release_all()  # this task's copies of stored objects may be evicted again
        sweep_deleted_copies()


@app.task(name=TASK_RUN_SHARD)
def run_shard(
    audit_id: str, index: int, start: int, stop: int, total: int, unit: str = "rows"
) -> dict[str, Any]:
    """Count one shard of a sharded audit (rows, or CSV bytes: ``unit``); the result
    (JSON counts) goes to the chord."""
    try:
        return shards.execute_shard(
            str(audit_id), int(index), int(start), int(stop), int(total), str(unit)
        )
    finally:
        release_all()


@app.task(name=TASK_MERGE_SHARDS, ignore_result=True)
def merge_shards(parts: list[dict[str, Any]], audit_id: str) -> str:
    """The chord's callback: merge the shard counts and store the results."""
    return shards.merge_shards(str(audit_id), parts)


@app.task(name=TASK_RECONCILE, ignore_result=True)
def reconcile() -> dict[str, Any]:
    """Periodic: re-publish lost jobs, fail exhausted ones (``workers.reconcile``)."""
    from workers.reconcile import reconcile as run

    return run().as_dict()


@app.task(name=TASK_FIRE_SCHEDULES, ignore_result=True)
def fire_schedules() -> list[str]:
    """Periodic: create and publish the audits of due schedules (``workers.scheduling``)."""
    from workers.scheduling import fire_due_schedules

    return fire_due_schedules()


@app.task(name=TASK_DELIVER_ALERT, ignore_result=True)
def deliver_alert(alert_id: str, attempt: int) -> str | None:
    """POST one alert to its webhook once (``audit.monitoring.notify.deliver_alert``)."""
    from audit.monitoring.notify import deliver_alert as deliver

    return deliver(str(alert_id), int(attempt))


@app.task(name=TASK_CONVERT_DATASET, ignore_result=True)
def convert_dataset(project: str, dataset_id: str) -> str:
    """The columnar copy of an uploaded CSV dataset (``workers.columnar``)."""
    from workers.columnar import convert_dataset as convert

    try:
        return convert(str(project), str(dataset_id))
    finally:
        sweep_deleted_copies()


@app.task(name=TASK_APPLY_RETENTION, ignore_result=True)
def apply_retention() -> list[str]:
    """Periodic: delete datasets and models past their retention (``audit.storage.retention``)."""
    from audit.settings import get_settings
    from audit.storage.retention import apply_retention as apply

    return apply(settings=get_settings())
