"""Liveness, readiness, Prometheus metrics, JSON logs, and what the API process imports."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from audit.api.app import create_app
from audit.api.logging import JsonFormatter, redact
from audit.settings import Settings
from audit.storage import db
from tests.audit.api.helpers import auth, finish_audit, spec_for

pytestmark = pytest.mark.postgres


def test_healthz_touches_nothing(api_settings: Settings) -> None:
    broken = api_settings.model_copy(
        update={
            "database_url": "postgresql://x@127.0.0.1:1/x",
            "broker_url": "redis://127.0.0.1:1/0",
        }
    )
    with TestClient(create_app(broken)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("update", "checks"),
    [
        ({}, {"database": "ok", "broker": "ok"}),
        ({"broker_url": "redis://127.0.0.1:1/15"}, {"database": "ok", "broker": "unavailable"}),
        ({"broker_url": None}, {"database": "ok", "broker": "not configured"}),
        (
            {"database_url": "postgresql://postgres@127.0.0.1:1/x"},
            {"database": "unavailable", "broker": "ok"},
        ),
    ],
)
def test_readyz(api_settings: Settings, update: dict, checks: dict) -> None:
    try:
        with TestClient(create_app(api_settings.model_copy(update=update))) as client:
            response = client.get("/readyz")
    finally:
        db.dispose_engines()
    ok = checks == {"database": "ok", "broker": "ok"}
    assert response.status_code == (200 if ok else 503)
    assert response.json()["checks"] == checks
    if not ok:
        failed = next(k for k, v in checks.items() if v != "ok")
        assert failed in response.json()["detail"]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_report_the_record_and_the_queue(
    client: TestClient,
    make_token: Callable[..., str],
    dataset_id: str,
    api_settings: Settings,
    redis_db: redis.Redis,
) -> None:
    token = make_token("submitter")
    ids = [
        client.post(
            "/v1/audits", json=spec_for(dataset_id, name=f"m{i}"), headers=auth(token)
        ).json()["id"]
        for i in range(3)
    ]
    finish_audit(api_settings.db_url, ids[0])
    client.post(f"/v1/audits/{ids[1]}/cancel", headers=auth(token))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    m = _samples(response.text)
    assert m[("biasaudit_audits", (("status", "queued"),))] == 1
    assert m[("biasaudit_audits", (("status", "succeeded"),))] == 1
    assert m[("biasaudit_audits", (("status", "cancelled"),))] == 1
    assert m[("biasaudit_audits", (("status", "failed"),))] == 0
    assert m[("biasaudit_audit_attempts", (("status", "succeeded"),))] == 1
    assert m[("biasaudit_audits_retried", ())] == 0
    assert m[("biasaudit_audit_duration_seconds_count", ())] == 1
    assert m[("biasaudit_audit_duration_seconds_bucket", (("le", "+Inf"),))] == 1
    assert m[("biasaudit_queue_depth", (("queue", "cpu"),))] == redis_db.llen("cpu") == 3
    assert m[("biasaudit_queue_depth", (("queue", "gpu"),))] == 0
    assert m[("biasaudit_oldest_queued_age_seconds", ())] > 0
    assert m[("biasaudit_metrics_scrape_errors", (("source", "database"),))] == 0
    posted = (
        "biasaudit_http_requests_total",
        (("method", "POST"), ("route", "/v1/audits"), ("status", "202")),
    )
    assert m[posted] == 3
    # three sequential submissions: three batches of one, each timed
    assert m[("biasaudit_submit_batch_size_count", ())] == 3
    assert m[("biasaudit_submit_batch_size_sum", ())] == 3
    assert m[("biasaudit_submit_batch_size_bucket", (("le", "1.0"),))] == 3
    assert m[("biasaudit_submit_batch_seconds_count", ())] == 3


def test_metrics_survive_an_unreachable_database(api_settings: Settings) -> None:
    down = api_settings.model_copy(update={"database_url": "postgresql://x@127.0.0.1:1/x"})
    try:
        with TestClient(create_app(down)) as client:
            response = client.get("/metrics")
    finally:
        db.dispose_engines()
    assert response.status_code == 200
    m = _samples(response.text)
    assert m[("biasaudit_metrics_scrape_errors", (("source", "database"),))] == 1
    assert m[("biasaudit_metrics_scrape_errors", (("source", "broker"),))] == 0


def test_json_logs_carry_request_and_audit_id(
    client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    token = make_token("submitter")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        response = client.post(
            "/v1/audits",
            json=spec_for(dataset_id),
            headers={**auth(token), "X-Request-ID": "req-1"},
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert response.headers["x-request-id"] == "req-1"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [x for x in lines if x["logger"] == "audit.api.access"]
    assert access, lines
    assert access[-1]["audit_id"] == response.json()["id"]
    assert access[-1]["request_id"] == "req-1"
    assert access[-1]["project"] == "acme"
    assert access[-1]["status"] == 202
    assert token not in stream.getvalue()


def test_redact() -> None:
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"
    assert redact("token ba_0123456789abcdef here") == "token [redacted] here"
    assert redact("audit 1234 done") == "audit 1234 done"


def test_api_imports_no_torch_transformers_or_workers() -> None:
    code = (
        "import sys\n"
        "from audit.api.app import create_app\n"
        "from audit.cli import service as service_cli\n"
        "app = create_app()\n"
        "app.openapi()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'workers'))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
