"""Workers on another machine: datasets through an S3-compatible store, no shared folder.

The stack's API and worker get ``BIASAUDIT_STORAGE_URL=s3://...`` (moto's
server, a child process on loopback) and *different* ``BIASAUDIT_DATA_DIR``
folders, as two machines would. The dataset goes straight to the store
(presigned PUT, then ``complete``, as ``biasaudit submit`` sends it); the worker
reads it from the store and, the file being above the shard threshold, shards it: the
row groups of the columnar copy a worker made right after the upload and put beside it
in the store, each shard reading its own row groups by ranged GETs.
The served results.json must equal the same audit run by a local-folder stack,
and the engine run in one process on the same bytes, to the last digit (ids and
times aside).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.cli.api_client import ApiClient
from audit.cli.submit import upload_direct
from audit.engine.run import compute_results
from audit.storage import repo, session_scope
from tests.factories import spec_for, write_pool
from tests.golden_plugin import normalised
from tests.integration.conftest import Stack, wait_for
from tests.s3_server import object_names, s3_client, s3_endpoint, s3_env  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    """The golden normal form without what names this dataset's copy (its path, the spec
    as it ran)."""
    doc = normalised(doc)
    doc["dataset"].pop("path", None)
    doc.get("manifest", {}).pop("spec", None)
    return doc


def _run(client: httpx.Client, dataset_id: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    spec = spec_for(dataset_id, name="object-store")
    submitted = client.post("/v1/audits", json=spec)
    assert submitted.status_code == 202, submitted.text
    audit_id = str(submitted.json()["id"])

    def finished() -> dict[str, Any] | None:
        body = client.get(f"/v1/audits/{audit_id}").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    status = wait_for(finished, timeout=120, what="the audit to finish", step=0.3)
    assert status["status"] == "succeeded", status
    return audit_id, spec, client.get(f"/v1/audits/{audit_id}/results").json()


def test_object_store_run_equals_local_folder_and_in_process(
    local: Stack,
    tmp_path: Path,
    s3_env: dict[str, str],  # noqa: F811
    s3_endpoint: str,  # noqa: F811
) -> None:
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
    auth = {"Authorization": f"Bearer {token}"}
    pool = write_pool(tmp_path / "applicants.csv", n=5000, seed=7)
    content = pool.read_bytes()

    # 1. the single-machine default: local folder shared by API and worker
    worker = local.worker("folder", concurrency=2)
    api, base = local.api("folder-api")
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        up = client.post("/v1/datasets", files={"file": ("a.csv", content, "text/csv")})
        assert up.status_code == 201, up.text
        folder_copy = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme" / f"{up.json()['id']}.csv"
        folder_copy = folder_copy.with_name(folder_copy.name + ".columnar.parquet")
        wait_for(folder_copy.exists, timeout=60, what="the columnar copy", step=0.2)
        _, _, on_folder = _run(client, up.json()["id"])
    local.stop(worker)
    local.stop(api)

    # 2. object store; the worker's machine has a folder of its own
    worker_dir = tmp_path / "worker-machine"
    worker = local.worker(
        "s3", concurrency=2, extra={**s3_env, "BIASAUDIT_DATA_DIR": str(worker_dir)}
    )
    api, base = local.api("s3-api", extra=s3_env)
    with ApiClient(base, token) as api_client:  # what `biasaudit submit` does
        done = upload_direct(api_client, pool)
    assert done is not None and done["sha256"] == hashlib.sha256(content).hexdigest()
    dataset_id = done["id"]
    bucket = s3_env["BIASAUDIT_STORAGE_URL"].removeprefix("s3://").split("/")[0]
    copy_key = f"tenants/acme/{dataset_id}.csv.columnar.parquet"  # made by the worker

    def copied() -> bool:
        return copy_key in object_names(s3_endpoint, bucket)

    wait_for(copied, timeout=60, what="the columnar copy in the store", step=0.3)
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        audit_id, spec, on_store = _run(client, dataset_id)

    lines = [x for x in worker.log_lines() if x.get("audit_id") == audit_id]
    assert any(x["message"] == "audit split into 4 shards" for x in lines), lines
    assert set(object_names(s3_endpoint, bucket)) == {
        f"tenants/acme/{dataset_id}.csv",
        copy_key,
        f"tenants/acme/audits/{audit_id}/report.html",
        f"tenants/acme/audits/{audit_id}/results.json",
    }
    exported = s3_client(s3_endpoint).get_object(
        Bucket=bucket, Key=f"tenants/acme/audits/{audit_id}/results.json"
    )
    assert json.loads(exported["Body"].read()) == on_store  # the copy is the served document
    original = worker_dir / "acme" / f"{dataset_id}.csv"
    assert original.read_bytes() == content  # the conversion read it from the store, verified
    columnar_copy = original.with_name(original.name + ".columnar.parquet")
    assert columnar_copy.is_file()  # and made its columnar copy, put in the store too
    # the shards read the copy's row groups by ranged GETs (no whole copy of either file)
    ranged = [x["message"] for x in lines if "read by range" in x["message"]]
    assert len(ranged) == 4, ranged
    for message in ranged:  # the copy's row groups and footer, and the CSV header at most
        fetched = int(message.split(": ")[1].split(" bytes")[0])
        assert message.endswith(" rows)"), message
        bound = columnar_copy.stat().st_size + min(len(content), 256 << 10)
        assert 0 < fetched <= bound, message
    api_dir = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme"
    assert not list(api_dir.rglob(f"{dataset_id}*"))  # the API machine kept no copy
    for service in (worker, api):
        assert s3_env["BIASAUDIT_STORAGE_SECRET_ACCESS_KEY"] not in service.log_text()

    # both read the upload's columnar copy; == the local-folder run, to the last digit
    assert on_store["dataset"].pop("columnar") is True
    assert on_folder["dataset"].pop("columnar") is True
    assert on_store["audit"]["id"] == audit_id
    assert _strip(on_store) == _strip(on_folder)
    # == the engine in one process on the same bytes, with the spec the worker ran
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copyfile(pool, ref / f"{dataset_id}.csv")
    # the worker runs the spec with the upload's recorded sha256 as the expected hash
    recorded = hashlib.sha256(pool.read_bytes()).hexdigest()
    worker_spec = {
        **spec,
        "dataset": {**spec["dataset"], "path": f"{dataset_id}.csv", "sha256": recorded},
    }
    expected = compute_results(worker_spec, audit_id="x", base_dir=ref)
    for doc in (on_store, expected):
        for key in ("id", "started_at", "finished_at"):
            doc["audit"].pop(key)
    assert on_store["dataset"].pop("shards") == 4  # the merge says so; one process does not
    assert on_store == expected
