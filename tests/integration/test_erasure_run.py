"""Deleting a dataset against the real stack: local folder and S3-compatible store.

Real API (uvicorn), worker process, PostgreSQL, Redis and a moto S3 server:

- local folder: ``DELETE`` is refused (409, naming the audit) while the audit runs,
  another project gets 404; once the audit is cancelled the file and the columnar copy
  the worker made are gone, and a new submission naming it is refused;
- object store, the worker on "another machine" (its own data folder): the objects
  (file and columnar copy) leave the bucket, the exported results stay, and the
  worker's cached copy is removed after its next task.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from audit.storage import repo, session_scope
from tests.factories import spec_for, write_pool
from tests.integration.conftest import Stack, wait_for, wait_status
from tests.s3_server import object_names, s3_endpoint, s3_env  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]
COLUMNAR = ".columnar.parquet"


def _tokens() -> tuple[dict[str, str], dict[str, str]]:
    with session_scope() as session:
        mine, _ = repo.create_token(session=session, project="acme", role="submitter")
        other, _ = repo.create_token(session=session, project="globex", role="admin")
    return {"Authorization": f"Bearer {mine}"}, {"Authorization": f"Bearer {other}"}


def _upload(client: httpx.Client, path: Path) -> str:
    response = client.post("/v1/datasets", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _finish(client: httpx.Client, dataset_id: str) -> str:
    submitted = client.post("/v1/audits", json=spec_for(dataset_id))
    assert submitted.status_code == 202, submitted.text
    audit_id = str(submitted.json()["id"])
    assert wait_status(audit_id, {"succeeded", "failed"}, timeout=120).status == "succeeded"
    return audit_id


def test_delete_on_the_local_folder_waits_for_the_running_audit(
    local: Stack, tmp_path: Path
) -> None:
    auth, other = _tokens()
    local.worker("erasure-folder")
    _, base = local.api("erasure-folder-api")
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        dataset_id = _upload(client, write_pool(tmp_path / "pool.csv", n=600))
        stored = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme" / f"{dataset_id}.csv"
        copy = stored.with_name(stored.name + COLUMNAR)
        wait_for(copy.exists, timeout=60, what="the columnar copy", step=0.2)
        spec = spec_for(dataset_id, description="biasaudit-test:sleep=60")
        audit_id = client.post("/v1/audits", json=spec).json()["id"]
        wait_status(audit_id, {"running"}, timeout=60)

        refused = client.delete(f"/v1/datasets/{dataset_id}")
        assert refused.status_code == 409, refused.text
        assert refused.json()["audits"] == [audit_id]
        assert client.delete(f"/v1/datasets/{dataset_id}", headers=other).status_code == 404
        assert stored.exists() and copy.exists()

        assert client.post(f"/v1/audits/{audit_id}/cancel").status_code in (200, 202)
        wait_status(audit_id, {"cancelled"}, timeout=60)
        deleted = client.delete(f"/v1/datasets/{dataset_id}")
        assert deleted.status_code == 204, deleted.text
        assert not stored.exists() and not copy.exists()
        assert not list(stored.parent.glob(f"*{dataset_id}*"))
        again = client.post("/v1/audits", json=spec_for(dataset_id))
        assert again.status_code == 404 and again.json()["field"] == "dataset.id"
        assert client.get(f"/v1/datasets/{dataset_id}").status_code == 410


def test_delete_on_the_object_store_removes_objects_and_worker_copies(
    local: Stack,
    tmp_path: Path,
    s3_env: dict[str, str],  # noqa: F811
    s3_endpoint: str,  # noqa: F811
) -> None:
    auth, _ = _tokens()
    worker_dir = tmp_path / "worker-machine"
    local.worker("erasure-s3", extra={**s3_env, "BIASAUDIT_DATA_DIR": str(worker_dir)})
    _, base = local.api("erasure-s3-api", extra=s3_env)
    bucket = s3_env["BIASAUDIT_STORAGE_URL"].removeprefix("s3://").split("/")[0]
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        dataset_id = _upload(client, write_pool(tmp_path / "pool.csv", n=600))
        key = f"tenants/acme/{dataset_id}.csv"

        def copied() -> bool:
            return key + COLUMNAR in object_names(s3_endpoint, bucket)

        wait_for(copied, timeout=60, what="the columnar copy in the store", step=0.3)
        audit_id = _finish(client, dataset_id)
        worker_copy = worker_dir / "acme" / f"{dataset_id}.csv"
        assert worker_copy.is_file()  # the worker machine's cached, verified copy

        assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
        left = object_names(s3_endpoint, bucket)
        assert not [name for name in left if dataset_id in name], left
        assert f"tenants/acme/audits/{audit_id}/results.json" in left  # results stay
        results = client.get(f"/v1/audits/{audit_id}/results")
        assert results.status_code == 200 and results.json()["dataset"]["sha256"]

        # the worker's next task removes its copy of the deleted dataset
        _finish(client, _upload(client, write_pool(tmp_path / "next.csv", n=500)))
        wait_for(lambda: not worker_copy.exists(), timeout=30, what="the copy's removal")
        assert not list(worker_copy.parent.glob(f"*{dataset_id}*"))
