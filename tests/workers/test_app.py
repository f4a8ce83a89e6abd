"""Celery settings that hold under faults, JSON logs with the audit id, worker arguments."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from audit.settings import Settings
from workers.app import QUEUE_MAINTENANCE, app, celery_config
from workers.cli import beat_argv, worker_argv
from workers.logs import AuditContextFilter, JsonFormatter, audit_context


def test_fault_tolerant_celery_settings() -> None:
    conf = celery_config(Settings(broker_url="redis://127.0.0.1:6379/0"))
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["result_accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is True
    assert conf["broker_connection_retry_on_startup"] is True
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    vt = conf["broker_transport_options"]["visibility_timeout"]
    assert vt > conf["task_time_limit"]
    assert conf["result_backend_transport_options"]["visibility_timeout"] == vt
    assert conf["result_extended"] is False  # task arguments never copied to the backend
    routes = conf["task_routes"]
    assert routes["biasaudit.reconcile"]["queue"] == QUEUE_MAINTENANCE
    assert routes["biasaudit.run_shard"]["queue"] == "cpu"
    beat = conf["beat_schedule"]
    assert {e["task"] for e in beat.values()} == {"biasaudit.reconcile", "biasaudit.fire_schedules"}


def test_the_running_app_uses_them() -> None:
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert list(app.conf.accept_content) == ["json"]
    app.loader.import_default_modules()  # what a starting worker does (conf.imports)
    names = {n for n in app.tasks if n.startswith("biasaudit.")}
    assert names == {
        "biasaudit.run_audit",
        "biasaudit.run_shard",
        "biasaudit.merge_shards",
        "biasaudit.reconcile",
        "biasaudit.fire_schedules",
        "biasaudit.deliver_alert",
        "biasaudit.convert_dataset",
        "biasaudit.apply_retention",
    }
    # the API side enqueues deliveries by this name, without importing workers/
    from audit.monitoring.notify import DELIVERY_QUEUE, TASK_DELIVER_ALERT

    assert TASK_DELIVER_ALERT in names
    assert app.conf.task_routes[TASK_DELIVER_ALERT] == {"queue": DELIVERY_QUEUE}
    # and the columnar copy of an upload (audit.queue.publish_conversion) on the cpu queue
    from audit.queue import QUEUE_CPU, TASK_CONVERT_DATASET

    assert app.conf.task_routes[TASK_CONVERT_DATASET] == {"queue": QUEUE_CPU}


def test_visibility_timeout_must_exceed_the_time_limit() -> None:
    with pytest.raises(ValueError, match="BIASAUDIT_VISIBILITY_TIMEOUT"):
        celery_config(
            Settings(task_time_limit=600, task_soft_time_limit=500, visibility_timeout=600)
        )
    with pytest.raises(ValueError, match="BIASAUDIT_TASK_SOFT_TIME_LIMIT"):
        celery_config(Settings(task_time_limit=600, task_soft_time_limit=600))


def test_pickle_messages_are_refused() -> None:
    from kombu.exceptions import ContentDisallowed
    from kombu.serialization import loads

    with pytest.raises(ContentDisallowed):
        loads(
            b"\x80\x04K\x01.",
            "application/x-python-serialize",
            "binary",
            accept=app.conf.accept_content,
        )


def test_gpu_workers_run_one_process() -> None:
    argv = worker_argv(queues=["gpu", "cpu"], concurrency=None)
    assert "--concurrency=1" in argv and "--queues=gpu,cpu" in argv
    assert "--concurrency=3" in worker_argv(queues=["cpu"], concurrency=3)
    with pytest.raises(ValueError, match="one per GPU"):
        worker_argv(queues=["gpu"], concurrency=4)
    with pytest.raises(ValueError, match="unknown queue"):
        worker_argv(queues=["gpu", "fast"], concurrency=None)
    assert "--beat" in beat_argv() and f"--queues={QUEUE_MAINTENANCE}" in beat_argv()


def _record(message: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("biasaudit.worker", logging.INFO, __file__, 1, message, args, None)


def test_json_logs_carry_the_audit_id_and_mask_tokens() -> None:
    fmt, flt = JsonFormatter(), AuditContextFilter()
    with audit_context("a-123"):
        record = _record("claimed %s", "ok")
        flt.filter(record)
    line = json.loads(fmt.format(record))
    assert line["audit_id"] == "a-123" and line["message"] == "claimed ok"
    assert line["level"] == "INFO" and line["logger"] == "biasaudit.worker"
    outside = _record("idle")
    flt.filter(outside)
    assert json.loads(fmt.format(outside))["audit_id"] is None
    token = "ba_" + "x" * 43
    masked = json.loads(fmt.format(_record("header Bearer %s", token)))["message"]
    assert token not in masked and "ba_***" in masked
    long = json.loads(fmt.format(_record("r" * 10_000)))["message"]
    assert len(long) < 2100


def test_bad_worker_settings_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], clean_settings: pytest.MonkeyPatch
) -> None:
    from workers.cli import run_worker

    assert run_worker(queues=["gpu"], concurrency=2) == 2
    assert "one per GPU" in capsys.readouterr().err
    assert run_worker(queues=["nope"], concurrency=None) == 2
    assert "unknown queue" in capsys.readouterr().err
