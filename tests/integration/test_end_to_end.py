"""Over HTTP, through Redis, on a real worker: a sharded audit equals the embedded one.

The dataset (5,000 rows) is above the stack's shard threshold (4,000 rows),
so the worker splits it into a chord of shards (the row groups of the upload's columnar
copy, made by the worker right after the upload) and merges their counts; the
document served by the API must equal what the engine computes in one
process on the same file. Afterwards the bearer token must appear nowhere in
Redis (every key of the database) nor in any service's log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
import redis

from audit import run_audit
from audit.engine.run import compute_results
from audit.storage import repo, session_scope
from probes.util import file_sha256
from tests.factories import spec_for, write_pool
from tests.golden_plugin import normalised
from tests.integration.conftest import Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for key in ("id", "started_at", "finished_at"):
        doc["audit"].pop(key, None)
    doc["dataset"].pop("shards", None)  # how many parts were merged
    return doc


def _redis_dump(conn: redis.Redis) -> bytes:
    """Every key and value of the Redis database, concatenated."""
    out = []
    for key in conn.scan_iter(count=1000):
        raw_kind = conn.type(key)
        assert isinstance(raw_kind, bytes)  # no decode_responses: every reply is bytes
        kind = raw_kind.decode()
        out.append(key)
        if kind == "string":
            out.append(conn.get(key) or b"")
        elif kind == "list":
            out.extend(conn.lrange(key, 0, -1))
        elif kind == "hash":
            for k, v in conn.hgetall(key).items():
                out.extend((k, v))
        elif kind == "set":
            out.extend(conn.smembers(key))
        elif kind == "zset":
            out.extend(conn.zrange(key, 0, -1))
    return b"\n".join(out)


def test_sharded_audit_over_http_equals_embedded_and_token_stays_out(
    local: Stack, tmp_path: Path
) -> None:
    api, base, worker = local.worker_and_api("e2e", concurrency=2)
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
    auth = {"Authorization": f"Bearer {token}"}
    pool = write_pool(tmp_path / "applicants.csv", n=5000, seed=11)

    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        upload = client.post(
            "/v1/datasets", files={"file": ("applicants.csv", pool.read_bytes(), "text/csv")}
        )
        assert upload.status_code == 201, upload.text
        dataset_id = upload.json()["id"]
        # the worker makes the upload's columnar copy (biasaudit.convert_dataset) beside it
        stored = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme"
        copy = stored / f"{dataset_id}.csv.columnar.parquet"
        wait_for(copy.exists, timeout=60, what="the columnar copy", step=0.2)
        spec = spec_for(dataset_id, name="e2e-sharded")
        submitted = client.post("/v1/audits", json=spec)
        assert submitted.status_code == 202, submitted.text
        audit_id = submitted.json()["id"]

        def finished() -> dict[str, Any] | None:
            body = client.get(f"/v1/audits/{audit_id}").json()
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None

        status = wait_for(finished, timeout=90, what="the audit to finish", step=0.3)
        assert status["status"] == "succeeded", status
        served = client.get(f"/v1/audits/{audit_id}/results")
        assert served.status_code == 200
        results = served.json()

    # the worker sharded it (a chord of 4 row groups of the columnar copy, 1,250 rows each),
    # read from the copy; the dataset is still the original bytes (sha256 below)
    assert results["dataset"]["shards"] == 4
    assert results["dataset"].pop("columnar") is True
    assert pq.ParquetFile(copy).metadata.num_row_groups == 4
    lines = [x for x in worker.log_lines() if x.get("audit_id") == audit_id]
    assert any(x["message"] == "audit split into 4 shards" for x in lines)
    assert sum(x["message"].startswith("shard ") for x in lines) == 4
    assert results["audit"]["id"] == audit_id and results["dataset"]["rows"] == 5000

    # == the engine in one process on the stored CSV file (read whole: the CSV, not the
    # copy), with the spec the worker ran
    stored_file = stored / f"{dataset_id}.csv"
    assert results["dataset"]["sha256"] == upload.json()["sha256"] == file_sha256(pool)
    # the worker runs the spec with the upload's recorded sha256 as the expected hash
    recorded = upload.json()["sha256"]
    worker_spec = {
        **spec,
        "dataset": {**spec["dataset"], "path": stored_file.name, "sha256": recorded},
    }
    expected = compute_results(worker_spec, audit_id="x", base_dir=stored)
    assert _strip(results) == _strip(expected)
    # == embedded run_audit on the original file (the spec differs only in id vs path)
    embedded_spec = {**spec, "dataset": {**spec["dataset"], "path": str(pool)}}
    embedded_spec["dataset"].pop("id")
    embedded = run_audit(embedded_spec, store=False)
    for doc in (results, embedded):
        doc["manifest"].pop("spec")
        doc["dataset"].pop("path")
    assert normalised(_strip(results)) == normalised(_strip(embedded))

    # the token is nowhere in Redis, nor in any log
    conn = redis.Redis.from_url(local.env["BIASAUDIT_BROKER_URL"])
    dump = _redis_dump(conn)
    assert dump, "expected Redis to hold the result backend's keys"
    assert token.encode() not in dump
    assert token[3:].encode() not in dump  # not even without its prefix
    for service in (worker, api, *local.services):
        assert token not in service.log_text(), service.name
    assert any(x.get("audit_id") == audit_id for x in worker.log_lines())
