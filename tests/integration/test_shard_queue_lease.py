"""Shards that wait in a busy queue for longer than the lease: the audit still runs once.

One worker process (concurrency 1). The large audit A is claimed first; while it
is being claimed (the ``sleep`` hook holds it two seconds) a busy audit B
(``sleep=20``) is queued, so A's shards are published behind B and wait about
20 s, longer than a sharded audit's lease (4 x 3 s). The reconciler runs every
second. The worker that split A keeps A's lease while its shards wait, so A is
never re-published, is claimed once, and its merged result is stored once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Stack, api_client, submit_pool, wait_for, wait_status
from tests.workers.conftest import result_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

BUSY_SECONDS = 20


def test_lease_is_kept_while_the_shards_wait_in_a_busy_queue(local: Stack, tmp_path: Path) -> None:
    _, base, worker = local.worker_and_api("queue", "queue-api", concurrency=1)
    lease = float(local.env["BIASAUDIT_LEASE_SECONDS"])
    assert BUSY_SECONDS > 4 * lease + 2  # the wait outlasts a sharded audit's lease
    with api_client(base) as client:
        big = submit_pool(client, tmp_path, description="biasaudit-test:sleep=2", n=6000)
        wait_status(big, {"running"}, timeout=30)
        busy = submit_pool(client, tmp_path, description=f"biasaudit-test:sleep={BUSY_SECONDS}")

        def split() -> bool:
            return any(
                x.get("audit_id") == big and x["message"].startswith("audit split into")
                for x in worker.log_lines()
            )

        wait_for(split, timeout=30, what="the large audit to be split")
        row = wait_status(busy, {"running"}, timeout=30)  # B now occupies the only process
        assert row.worker.startswith("queue@test/")
        row = wait_status(big, {"succeeded", "failed"}, timeout=BUSY_SECONDS + 60)
        assert (row.status, row.attempts, row.error) == ("succeeded", 1, None)
        assert result_count(big) == 1
        assert wait_status(busy, {"succeeded"}, timeout=30).attempts == 1
    lines = [x for x in worker.log_lines() if x.get("audit_id") == big]
    assert sum(x["message"].startswith("audit claimed") for x in lines) == 1
    shard_lines = [x for x in lines if x["message"].startswith("shard ")]
    assert len(shard_lines) >= 4
    beat = next(s for s in local.services if s.name == "beat")
    republished = [x for x in beat.log_lines() if x["message"].startswith("re-published")]
    assert not any(big in x["message"] for x in republished), republished
