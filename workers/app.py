"""The Celery application: settings chosen to hold under faults (see docs/service.md).

PostgreSQL is the record and Redis only carries messages, so Celery is set up
to *redeliver rather than lose* and the database claim makes redeliveries
harmless:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged
  only after its task returns; if the process running it dies (SIGKILL, OOM)
  the message goes back to the queue.
- ``worker_prefetch_multiplier=1``: a worker reserves no more than it runs, so
  a long GPU audit never sits on messages another worker could take.
- ``visibility_timeout`` (broker *and* result backend) above the hard time
  limit: Redis redelivers an unacknowledged message only after that long, so
  a running audit is never handed to a second worker by Redis itself.
- soft/hard time limits; JSON only (no pickle: a message cannot run code);
  ``worker_cancel_long_running_tasks_on_connection_loss`` (their messages come
  back anyway); ``broker_connection_retry_on_startup`` (wait for Redis).

Task arguments are audit ids and shard row numbers only — never a token, a
secret or a spec.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from audit.queue import QUEUE_CPU, QUEUE_GPU, TASK_CONVERT_DATASET, TASK_RUN_AUDIT
from audit.settings import Settings, get_settings

QUEUE_MAINTENANCE = "maintenance"
QUEUES = (QUEUE_GPU, QUEUE_CPU, QUEUE_MAINTENANCE)
TASK_RUN_SHARD = "biasaudit.run_shard"
TASK_MERGE_SHARDS = "biasaudit.merge_shards"
TASK_RECONCILE = "biasaudit.reconcile"
TASK_FIRE_SCHEDULES = "biasaudit.fire_schedules"
TASK_APPLY_RETENTION = "biasaudit.apply_retention"
TASK_DELIVER_ALERT = "biasaudit.deliver_alert"  # = audit.monitoring.notify.TASK_DELIVER_ALERT
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"

MSG_VISIBILITY = (
    "BIASAUDIT_VISIBILITY_TIMEOUT: must be greater than BIASAUDIT_TASK_TIME_LIMIT "
    "({time_limit} s), or Redis would hand a still-running audit to a second worker; got {vt} s"
)
MSG_SOFT_LIMIT = (
    "BIASAUDIT_TASK_SOFT_TIME_LIMIT: must be less than BIASAUDIT_TASK_TIME_LIMIT "
    "({time_limit} s); got {soft} s"
)


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings`` (a plain dict: easy to test and document)."""
    if settings.visibility_timeout <= settings.task_time_limit:
        raise ValueError(
            MSG_VISIBILITY.format(
                time_limit=settings.task_time_limit, vt=settings.visibility_timeout
            )
        )
    if settings.task_soft_time_limit >= settings.task_time_limit:
        raise ValueError(
            MSG_SOFT_LIMIT.format(
                time_limit=settings.task_time_limit, soft=settings.task_soft_time_limit
            )
        )
    broker = settings.broker_url or DEFAULT_BROKER
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
    }
    beat_options = {"queue": QUEUE_MAINTENANCE}
    return {
        "broker_url": broker,
        # Chords (sharded audits) need a result backend; audit state itself lives in the DB.
        "result_backend": settings.result_backend_url or broker,
        "broker_transport_options": transport,
        "result_backend_transport_options": dict(transport),
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task that raised or hit its time limit is acked: the database decides retries.
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        "worker_hijack_root_logger": False,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_default_queue": QUEUE_CPU,
        "task_routes": {
            TASK_RUN_AUDIT: {"queue": QUEUE_CPU},  # publish() names gpu or cpu explicitly
            TASK_RUN_SHARD: {"queue": QUEUE_CPU},
            TASK_MERGE_SHARDS: {"queue": QUEUE_CPU},
            TASK_RECONCILE: {"queue": QUEUE_MAINTENANCE},
            TASK_FIRE_SCHEDULES: {"queue": QUEUE_MAINTENANCE},
            TASK_APPLY_RETENTION: {"queue": QUEUE_MAINTENANCE},
            TASK_DELIVER_ALERT: {"queue": QUEUE_CPU},  # off the beat: a hook may take seconds
            TASK_CONVERT_DATASET: {"queue": QUEUE_CPU},  # an upload's columnar copy
        },
        "result_expires": 24 * 3600,
        "result_extended": False,  # never copy task arguments into the result backend
        "task_track_started": False,
        "worker_send_task_events": False,
        "beat_schedule": {
            **_retention_beat(settings, beat_options),
            "reconcile": {
                "task": TASK_RECONCILE,
                "schedule": settings.reconcile_interval,
                # a backlog of stale reconcile messages is pointless: drop the old ones
                "options": {**beat_options, "expires": settings.reconcile_interval},
            },
            "fire-schedules": {
                "task": TASK_FIRE_SCHEDULES,
                "schedule": settings.schedule_interval,
                "options": {**beat_options, "expires": settings.schedule_interval},
            },
        },
        "beat_schedule_filename": str(settings.artifact_dir / "celerybeat-schedule"),
    }


def _retention_beat(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """The retention run (``biasaudit.apply_retention``), only when a retention is set."""
    if settings.dataset_retention_days is None and settings.model_retention_days is None:
        return {}
    every = settings.retention_interval
    return {
        "apply-retention": {
            "task": TASK_APPLY_RETENTION,
            "schedule": every,
            "options": {**options, "expires": every},
        }
    }


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from ``settings`` (default: the environment) with our tasks."""
    app = Celery("biasaudit", set_as_current=True)
    app.conf.update(celery_config(settings or get_settings()))
    app.conf.imports = ("workers.tasks",)
    return app


@setup_logging.connect
def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    """Replace Celery's log format with JSON lines carrying the audit id."""
    from workers.logs import configure_json_logging

    configure_json_logging(loglevel or "INFO")


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """Pooled database connections must not be shared with the parent process; each
    pool process starts its lease keeper (``workers.lease``) before its first claim."""
    from audit.storage import db
    from workers.lease import keeper

    db.dispose_engines()
    keeper().start()


app = make_app()
