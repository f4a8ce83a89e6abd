"""A 15 s PostgreSQL outage in the middle of an audit costs no attempt.

The stack (``serve``, a worker, the beat) runs against a PostgreSQL cluster
of this test's own, which it stops for 15 s while the audit computes: the
heartbeat and the lease keeper log their failures and carry on, the worker
stores its result once the database is back (retrying within the lease,
here 30 s), and the reconciler never re-runs the audit.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from audit.settings import get_settings
from audit.storage import db
from tests.integration.conftest import (
    Stack,
    api_client,
    free_port,
    redis_server,
    service_env,
    submit_pool,
    wait_status,
)
from tests.integration.pgcluster import private_cluster
from tests.workers.conftest import result_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]
OUTAGE_S = 15
LEASE_S = 30  # the outage fits in the lease: retrying within it is the promise


def test_database_outage_mid_audit_costs_no_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_cluster() as cluster:
        url = cluster.create_database("biasaudit")
        port = free_port()
        env = service_env(
            database_url=url,
            broker_url=f"redis://127.0.0.1:{port}/0",
            base=tmp_path,
            extra={"BIASAUDIT_LEASE_SECONDS": str(LEASE_S)},
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        broker = redis_server(port, tmp_path)
        own = Stack(env, tmp_path / "logs")
        try:
            db.upgrade(url)
            beat = own.beat("outage-beat", wait=False)  # the three start side by side
            api, base, worker = own.worker_and_api("steady", "outage-api")
            beat.wait_ready()
            with api_client(base, database_url=url) as client:
                # computes for 6 s: the database goes down 1 s in and comes back 10 s
                # after the computation ended, so the result is stored through the outage
                audit_id = submit_pool(client, tmp_path, description="biasaudit-test:sleep=6")
                started = wait_status(audit_id, {"running"}, timeout=60).started_at
                time.sleep(1)
                cluster.stop("fast")  # every client's connection is closed
                time.sleep(OUTAGE_S)
                cluster.start()
                row = wait_status(audit_id, {"succeeded", "failed"}, timeout=60)
                assert (row.status, row.attempts, row.error) == ("succeeded", 1, None)
                assert row.started_at == started and row.started_at <= row.finished_at
                assert result_count(audit_id) == 1
                status = client.get(f"/v1/audits/{audit_id}").json()
                assert status["status"] == "succeeded"
                assert client.get(f"/v1/audits/{audit_id}/report").status_code == 200
            messages = [line["message"] for line in worker.log_lines()]
            assert any("database unavailable during storing the results" in m for m in messages)
            assert sum(m.startswith("audit claimed") for m in messages) == 1
            assert any("lease renewal failed" in m for m in messages)  # the keeper carried on
        finally:
            own.stop_all()
            broker.kill()
            broker.wait(timeout=10)
            db.dispose_engines()
            get_settings.cache_clear()
