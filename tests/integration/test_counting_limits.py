"""Group cardinality against a real ``serve`` + ``worker`` (PostgreSQL, Redis, Celery).

The attacks of issue #8 item 3, submitted with a submitter token through the API:

- five protected columns of 50 levels, ``intersectional: true``, 2,000 rows (the
  dense counter once tried to allocate 9.3 GiB for it): refused by name, at once
  (one attempt, no retry), in under 10 s, the worker staying under 500 MB; the same
  columns audited one by one succeed;
- a 200,000-level protected column (an id column by mistake) in a file the API
  cannot count the levels of (``dataset.path``): the worker refuses it naming the
  column in under 5 s.

Peak memory is the kernel's high-water mark (``VmHWM``) of the worker's processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from audit.storage import repo, session_scope
from tests.integration.conftest import Stack, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

MEMORY_LIMIT = 500 * 2**20


@pytest.fixture
def api(local: Stack) -> Iterator[tuple[httpx.Client, Path]]:
    _, base = local.api("counts-api")
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
    folder = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme"
    folder.mkdir(parents=True, exist_ok=True)
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client, folder


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the Celery pool processes), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, p in parents.items() if p in frontier]
        found += frontier
    return found


def _peak_rss(pid: int) -> int:
    """The largest resident-set high-water mark among the worker's processes, in bytes."""
    peak = 0
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    return peak


def _submit(client: httpx.Client, spec: dict[str, Any]) -> tuple[str, float]:
    start = time.perf_counter()
    response = client.post("/v1/audits", json=spec)
    assert response.status_code == 202, response.text
    return str(response.json()["id"]), start


def test_wide_intersections_and_id_columns_are_refused_by_name_fast(
    local: Stack, api: tuple[httpx.Client, Path]
) -> None:
    client, folder = api
    worker = local.worker("counts-worker")
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"p{i}": rng.integers(0, 50, size=n) for i in range(5)})
    frame["advanced"] = rng.integers(0, 2, size=n)
    upload = client.post(
        "/v1/datasets", files={"file": ("wide.csv", frame.to_csv(index=False), "text/csv")}
    )
    assert upload.status_code == 201, upload.text
    spec: dict[str, Any] = {
        "name": "wide",
        "dataset": {
            "id": upload.json()["id"],
            "prediction": "advanced",
            "protected": [f"p{i}" for i in range(5)],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
    }
    audit_id, start = _submit(client, spec)
    row = wait_status(audit_id, {"failed", "succeeded"}, timeout=60)
    wide_s = time.perf_counter() - start
    assert row.status == "failed" and row.attempts == 1, row.error
    assert "of 31 attribute sets counted; largest: 'p0&p1&p2&p3&p4' (2000)" in row.error
    assert "more than policy.max_total_groups=20000" in row.error
    assert wide_s < 10.0
    shown = client.get(f"/v1/audits/{audit_id}").json()
    assert shown["status"] == "failed" and "policy.max_total_groups" in shown["error"]

    spec["probes"] = [{"kind": "demographic"}]  # the five columns one by one: 250 groups
    audit_id, _ = _submit(client, spec)
    row = wait_status(audit_id, {"failed", "succeeded"}, timeout=60)
    assert row.status == "succeeded", row.error
    results = client.get(f"/v1/audits/{audit_id}/results").json()
    assert [p["attribute"] for p in results["probes"]] == [f"p{i}" for i in range(5)]

    ids = 200_000
    pd.DataFrame({"id": np.arange(ids), "advanced": rng.integers(0, 2, size=ids)}).to_csv(
        folder / "ids.csv", index=False
    )
    spec = {
        "name": "ids",
        "dataset": {"path": "ids.csv", "prediction": "advanced", "protected": ["id"]},
    }
    audit_id, start = _submit(client, spec)
    row = wait_status(audit_id, {"failed", "succeeded"}, timeout=60)
    elapsed = time.perf_counter() - start
    assert row.status == "failed" and row.attempts == 1, row.error
    assert "column 'id' has 200000 distinct values, more than policy.max_levels=1000" in row.error
    assert elapsed < 5.0
    peak = _peak_rss(worker.proc.pid)
    print(
        f"5x50 refused in {wide_s:.2f} s; 200k levels in {elapsed:.2f} s; "
        f"peak {peak / 2**20:.0f} MiB"
    )
    assert peak < MEMORY_LIMIT
