"""Enqueue audits by task name, and look at the broker: the API's whole view of Celery.

The API process never imports ``workers/`` (nor torch): it sends the task
*by name* through a lightweight Celery client, after the audit row is
committed. The message carries only the audit id — no token, no secret, no
spec — and is JSON-serialised. The worker looks everything else up in the
database.

Both the API (after commit) and the workers' reconciler call :func:`publish`.
With kombu's Redis transport a queue is a Redis list named after the queue,
so :func:`queue_depths` is an ``LLEN`` per queue, and :func:`publish` on a
Redis broker writes the Celery (protocol 2) message itself: one ``LPUSH`` on a
pooled connection, the envelope kombu's Redis transport writes for the
default exchange. Going through ``send_task`` cost about 1 ms of CPU per
message (kombu builds a new Redis client for every put); other brokers still
go through Celery.

Example
-------
>>> queue_for({"model": {"kind": "predictions"}})
'cpu'
>>> queue_for({"model": {"kind": "huggingface", "path": "m"}})
'gpu'
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import uuid
from typing import Any

log = logging.getLogger(__name__)

TASK_RUN_AUDIT = "biasaudit.run_audit"
TASK_CONVERT_DATASET = "biasaudit.convert_dataset"  # columnar copy of an uploaded CSV
QUEUE_GPU = "gpu"
QUEUE_CPU = "cpu"
QUEUES = (QUEUE_GPU, QUEUE_CPU)
# spec.model.kind values that need a model loaded (and so a GPU worker).
MODEL_KINDS = frozenset({"sklearn", "huggingface", "onnx"})
# kombu's Redis transport keeps non-zero priorities in separate lists "<queue>\x06\x16<p>".
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
# Fail fast when the broker is down: the reconciler publishes later anyway.
_CONNECT_TIMEOUT_S = 2.0
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
_RETRIES, _RETRY_BACKOFF_S = 1, 0.2  # the same policy for the direct Redis publish

_clients: dict[str, Any] = {}
_redis_clients: dict[str, Any] = {}
_lock = threading.Lock()
# The task's options as Celery encodes them: no callbacks, no chain, no chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class BrokerNotConfigured(RuntimeError):
    """``BIASAUDIT_BROKER_URL`` is unset (embedded mode): there is nothing to publish to."""


def queue_for(spec: dict[str, Any]) -> str:
    """The queue an audit runs on: ``gpu`` when its model must be loaded, else ``cpu``."""
    model = spec.get("model") or {}
    kind = model.get("kind", "predictions") if isinstance(model, dict) else "predictions"
    return QUEUE_GPU if kind in MODEL_KINDS else QUEUE_CPU


def _broker_url(broker_url: str | None) -> str:
    if broker_url:
        return broker_url
    from audit.settings import get_settings

    url = get_settings().broker_url
    if not url:
        raise BrokerNotConfigured(
            "BIASAUDIT_BROKER_URL: not set; the service needs a broker, "
            "e.g. redis://127.0.0.1:6379/0"
        )
    return url


def client(broker_url: str | None = None) -> Any:
    """A Celery *client* app for ``broker_url`` (default: settings), created once per URL.

    It knows no tasks; it only sends them by name, JSON only.
    """
    url = _broker_url(broker_url)
    with _lock:
        app = _clients.get(url)
        if app is None:
            from celery import Celery

            app = Celery("biasaudit-client", broker=url, set_as_current=False)
            app.conf.update(
                task_serializer="json",
                accept_content=["json"],
                result_serializer="json",
                task_ignore_result=True,
                broker_connection_timeout=_CONNECT_TIMEOUT_S,
                broker_connection_retry_on_startup=False,
                broker_transport_options={
                    "socket_connect_timeout": _CONNECT_TIMEOUT_S,
                    "socket_timeout": _CONNECT_TIMEOUT_S,
                },
            )
            _clients[url] = app
        return app


def publish(audit_id: str, *, queue: str, broker_url: str | None = None) -> None:
    """Send ``biasaudit.run_audit(audit_id)`` to ``queue``; raises if the broker is down.

    Call it only after the audit row is committed. The only argument is the
    audit id; callers treat a failure as "the reconciler will publish it".
    """
    if queue not in QUEUES:
        raise ValueError(f"queue: must be one of {', '.join(QUEUES)}, got {queue!r}")
    url = _broker_url(broker_url)
    if _is_redis(url):
        _pooled_redis(url).lpush(queue, task_message(str(audit_id), queue=queue))
        return
    _send(url, TASK_RUN_AUDIT, [str(audit_id)], queue)


def _send(url: str, task: str, args: list[str], queue: str) -> None:
    """Celery's send_task to ``queue``, JSON, retried by the publish policy, no result."""
    client(url).send_task(
        task,
        args=args,
        queue=queue,
        routing_key=queue,
        serializer="json",
        retry=True,
        retry_policy=_RETRY_POLICY,
        ignore_result=True,
    )


def publish_conversion(project: str, dataset_id: str, *, broker_url: str | None = None) -> None:
    """Send ``biasaudit.convert_dataset(project, dataset_id)`` to the cpu queue (the
    columnar copy of an uploaded CSV file); raises if the broker is down. Call it only
    after the dataset row is committed."""
    _send(_broker_url(broker_url), TASK_CONVERT_DATASET, [project, dataset_id], QUEUE_CPU)


def publish_many(jobs: list[tuple[str, str]], *, broker_url: str | None = None) -> None:
    """:func:`publish` for several ``(audit_id, queue)`` pairs: one round trip on Redis.

    The API's group commit publishes a whole committed batch this way (one
    pipelined ``LPUSH`` per queue). All or nothing from the caller's view:
    on an error the caller leaves every audit to the reconciler; one that did
    reach the queue is then delivered twice, which the workers' claim absorbs.
    """
    for _, queue in jobs:
        if queue not in QUEUES:
            raise ValueError(f"queue: must be one of {', '.join(QUEUES)}, got {queue!r}")
    if not jobs:
        return
    url = _broker_url(broker_url)
    if not _is_redis(url):
        for audit_id, queue in jobs:
            publish(audit_id, queue=queue, broker_url=url)
        return
    by_queue: dict[str, list[bytes]] = {}
    for audit_id, queue in jobs:
        by_queue.setdefault(queue, []).append(task_message(str(audit_id), queue=queue))
    pipe = _pooled_redis(url).pipeline(transaction=False)
    for queue, messages in by_queue.items():
        pipe.lpush(queue, *messages)
    pipe.execute()


def task_message(audit_id: str, *, queue: str) -> bytes:
    """The JSON message kombu's Redis transport stores for ``run_audit(audit_id)`` on ``queue``.

    Celery task protocol 2 (headers + ``[args, kwargs, embed]`` body, base64 in
    the envelope), published to the default exchange with ``queue`` as the
    routing key, priority 0, result ignored: what ``send_task`` writes, minus the
    reply-to address of a result backend the API does not use.
    """
    task_id = str(uuid.uuid4())
    args = [audit_id]
    body = json.dumps([args, {}, _EMBED]).encode()
    headers: dict[str, Any] = {
        "lang": "py",
        "task": TASK_RUN_AUDIT,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(args),
        "kwargsrepr": "{}",
        "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    message = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message).encode()


def _pooled_redis(url: str) -> Any:
    """One Redis client (and so one connection pool) per broker URL per process."""
    with _lock:
        conn = _redis_clients.get(url)
        if conn is None:
            import redis
            from redis.backoff import ConstantBackoff
            from redis.retry import Retry

            conn = _redis_clients[url] = redis.Redis.from_url(
                url,
                socket_connect_timeout=_CONNECT_TIMEOUT_S,
                socket_timeout=_CONNECT_TIMEOUT_S,
                retry=Retry(ConstantBackoff(_RETRY_BACKOFF_S), _RETRIES),
                health_check_interval=30,
            )
        return conn


def _redis(broker_url: str | None) -> Any:
    import redis

    return redis.Redis.from_url(
        _broker_url(broker_url),
        socket_connect_timeout=_CONNECT_TIMEOUT_S,
        socket_timeout=_CONNECT_TIMEOUT_S,
    )


def _is_redis(url: str) -> bool:
    return url.split(":", 1)[0] in ("redis", "rediss", "unix")


def broker_ping(broker_url: str | None = None) -> bool:
    """True when the broker answers (for ``/readyz``); never raises."""
    try:
        url = _broker_url(broker_url)
        if _is_redis(url):
            with _redis(url) as conn:
                return bool(conn.ping())
        from kombu import Connection

        with Connection(url, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception as exc:  # readiness reports, it does not crash
        log.warning("broker ping failed: %s", type(exc).__name__)
        return False


def queue_depths(broker_url: str | None = None) -> dict[str, int]:
    """Messages waiting per queue (Redis ``LLEN``, all priority lists summed).

    Raises when the broker cannot be reached or is not Redis.
    """
    url = _broker_url(broker_url)
    if not _is_redis(url):
        raise ValueError(f"queue_depths: only Redis brokers are supported, got {url.split(':')[0]}")
    with _redis(url) as conn:
        pipe = conn.pipeline()
        for queue in QUEUES:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
        counts = pipe.execute()
    per = 1 + len(_PRIORITY_STEPS)
    return {q: int(sum(counts[i * per : (i + 1) * per])) for i, q in enumerate(QUEUES)}
