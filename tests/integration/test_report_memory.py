"""Three concurrent reads of a large report do not multiply the API's memory.

The report is rendered once and stored in pieces; ``GET /report`` streams it
piece by piece. Here a 48 MB report is read by three clients at once from a
real ``biasaudit serve``, while the test samples the server's resident memory:
it grows by far less than one copy of the report (rendering per request held
the whole document and its HTML in memory for each reader).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from audit.storage import repo, session_scope
from tests.factories import spec_for
from tests.integration.conftest import Stack, add_dataset, api_client
from tests.workers.conftest import add_audit

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]
REPORT_BYTES = 48 * 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_three_concurrent_reads_of_a_large_report_do_not_multiply_memory(
    local: Stack,
) -> None:
    api, base = local.api("report-api")
    audit_id = add_audit(spec_for(add_dataset(Path(local.env["BIASAUDIT_DATA_DIR"]))))
    report = os.urandom(REPORT_BYTES // 2).hex().encode()  # compresses to about half
    with session_scope() as session:
        repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)
    with session_scope() as session:
        repo.store_results(
            session=session,
            audit_id=audit_id,
            results={"verdict": "pass"},
            reports={"html": report},
        )
    url = f"/v1/audits/{audit_id}/report"
    with api_client(base) as client:
        assert client.get("/healthz").status_code == 200
        baseline = _rss(api.proc.pid)
        peak = [baseline]
        sizes: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss(api.proc.pid))
                time.sleep(0.02)

        def read(encoding: str) -> None:
            headers = {**client.headers, "Accept-Encoding": encoding}
            with httpx.stream("GET", base + url, headers=headers, timeout=120) as response:
                assert response.status_code == 200
                sizes.append(sum(len(b) for b in response.iter_bytes()))

        sampler = threading.Thread(target=sample)
        sampler.start()
        encodings = ("identity", "identity", "gzip")
        readers = [threading.Thread(target=read, args=(e,)) for e in encodings]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=180)
        done.set()
        sampler.join()
    assert sizes == [REPORT_BYTES] * 3
    growth = peak[0] - baseline
    # measured: about 7 MiB for the three (a few pieces each); one rendering alone was more
    assert growth < REPORT_BYTES // 3, f"the API grew by {growth / 2**20:.1f} MiB"
