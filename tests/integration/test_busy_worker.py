"""A worker busy for three lease lengths in one call keeps its lease: the audit runs once.

The audit's worker spends 10 s (over three 3 s leases) in one C call that
holds the GIL, so no thread of its process runs; the lease keeper process
renews the lease meanwhile. A second, idle worker and the reconciler (every
second) are there to take the audit if its lease ever lapsed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Stack, api_client, submit_pool, wait_status
from tests.workers.conftest import result_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def test_worker_busy_for_three_leases_in_one_call_keeps_its_lease(
    local: Stack, tmp_path: Path
) -> None:
    _, base, busy = local.worker_and_api("busy", "busy-api")
    with api_client(base) as client:
        audit_id = submit_pool(client, tmp_path, description="biasaudit-test:hold=10")
        row = wait_status(audit_id, {"running"}, timeout=30)
        started, lease = row.started_at, float(local.env["BIASAUDIT_LEASE_SECONDS"])
        assert row.worker.startswith("busy@test/") and 10 >= 3 * lease
        idle = local.worker("idle")  # would claim a re-published audit
        row = wait_status(audit_id, {"succeeded", "failed"}, timeout=90)
        assert (row.status, row.attempts, row.error) == ("succeeded", 1, None)
        assert row.worker.startswith("busy@test/") and row.started_at == started
        assert row.started_at <= row.finished_at
        assert result_count(audit_id) == 1
        assert client.get(f"/v1/audits/{audit_id}").json()["status"] == "succeeded"
    lines = [x for s in (busy, idle) for x in s.log_lines() if x.get("audit_id") == audit_id]
    assert sum(x["message"].startswith("audit claimed") for x in lines) == 1  # one start
    assert any(x["message"].startswith("test hook: holding the GIL") for x in lines)
    assert not any(x["message"].startswith("claim lost") for x in lines)
