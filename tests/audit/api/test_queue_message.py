"""The API's direct Redis publish writes the message Celery's ``send_task`` would write."""

from __future__ import annotations

import argparse
import base64
import json

import pytest
import redis

from audit.cli.service import api_workers
from audit.queue import TASK_RUN_AUDIT, client, publish
from tests.audit.api.conftest import REDIS_URL


def _only(conn: redis.Redis, queue: str) -> dict:
    [raw] = conn.lrange(queue, 0, -1)
    conn.delete(queue)
    return json.loads(raw)


def test_direct_publish_matches_celery_send_task(redis_db: redis.Redis) -> None:
    audit_id = "0b0e2f7c-0000-4000-8000-000000000001"
    client(REDIS_URL).send_task(
        TASK_RUN_AUDIT,
        args=[audit_id],
        queue="cpu",
        routing_key="cpu",
        serializer="json",
        ignore_result=True,
    )
    celery = _only(redis_db, "cpu")
    publish(audit_id, queue="cpu", broker_url=REDIS_URL)
    ours = _only(redis_db, "cpu")

    decode = base64.b64decode
    assert json.loads(decode(ours["body"])) == json.loads(decode(celery["body"]))
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == {
        k: v for k, v in celery.items() if k not in ("body", "headers", "properties")
    }
    per_message = {"id", "root_id"}
    assert ours["headers"].keys() == celery["headers"].keys()
    assert {k: v for k, v in ours["headers"].items() if k not in per_message} == {
        k: v for k, v in celery["headers"].items() if k not in per_message
    }
    assert ours["headers"]["id"] == ours["headers"]["root_id"] != celery["headers"]["id"]
    props = {k: v for k, v in celery["properties"].items() if k != "reply_to"}  # no results
    assert ours["properties"].keys() == props.keys()
    assert ours["properties"]["correlation_id"] == ours["headers"]["id"]
    for key in ("delivery_mode", "delivery_info", "priority", "body_encoding"):
        assert ours["properties"][key] == props[key]
    publish(audit_id, queue="gpu", broker_url=REDIS_URL)
    assert _only(redis_db, "gpu")["properties"]["delivery_info"]["routing_key"] == "gpu"


def test_api_workers_from_option_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert api_workers(argparse.Namespace()) == 1
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert api_workers(argparse.Namespace()) == 3
    assert api_workers(argparse.Namespace(workers=2)) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("WEB_CONCURRENCY", bad)
        with pytest.raises(ValueError, match=f"WEB_CONCURRENCY: .* got '{bad}'"):
            api_workers(argparse.Namespace())
    with pytest.raises(ValueError, match="--workers"):
        api_workers(argparse.Namespace(workers=0))
