"""A result over BIASAUDIT_MAX_RESULT_BYTES fails once, with its own message, no retry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, api_client, submit_pool, wait_status
from tests.workers.conftest import result_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]
LIMIT = 4096


def test_result_over_the_size_cap_fails_once_naming_the_limit(local: Stack, tmp_path: Path) -> None:
    _, base, worker = local.worker_and_api(
        "capped", "capped-api", extra={"BIASAUDIT_MAX_RESULT_BYTES": str(LIMIT)}
    )
    with api_client(base) as client:
        audit_id = submit_pool(client, tmp_path)
        row = wait_status(audit_id, {"succeeded", "failed"}, timeout=60)
        assert (row.status, row.attempts) == ("failed", 1)
        status = client.get(f"/v1/audits/{audit_id}").json()
        assert status["status"] == "failed"
        assert status["error"].startswith("results: the audit's results are ")
        assert f"over the limit of {LIMIT:,} bytes (BIASAUDIT_MAX_RESULT_BYTES)" in status["error"]
        time.sleep(4)  # four reconciler runs: an input error is never re-published
        row = wait_status(audit_id, {"failed"}, timeout=1)
        assert row.attempts == 1 and result_count(audit_id) == 0
        assert client.get(f"/v1/audits/{audit_id}/report").status_code == 409
    lines = [x for x in worker.log_lines() if x.get("audit_id") == audit_id]
    assert sum(x["message"].startswith("audit claimed") for x in lines) == 1
    assert not any(x["level"] == "ERROR" for x in lines)
