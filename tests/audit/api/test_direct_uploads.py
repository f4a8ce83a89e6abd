"""Datasets in an object store (moto's S3 server as a child process on loopback).

With ``BIASAUDIT_STORAGE_URL=s3://...`` a multipart upload lands in the bucket
under its project, and the direct flow (presigned PUT, then ``complete``)
registers a dataset only after the same checks: the declared SHA-256 (read back
from the store), the size limit and the type. Refusals name the field and leave
nothing behind; another project cannot complete someone else's upload.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from audit.api.app import create_app
from audit.errors import AuditInputError
from audit.settings import Settings, get_settings
from audit.storage import db
from audit.storage.objects import get_store, stored_model
from audit.storage.repo import get_dataset, get_model
from probes.models.fingerprint import fingerprint
from tests.audit.api.conftest import MAX_UPLOAD_BYTES
from tests.audit.api.helpers import auth, make_csv, upload
from tests.s3_server import object_names, s3_endpoint, s3_env  # noqa: F401


@pytest.fixture
def s3_settings(
    api_settings: Settings,
    s3_env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def s3(s3_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(s3_settings)) as c:
        yield c


def _bucket(settings: Settings) -> str:
    assert settings.storage_url is not None
    return settings.storage_url.removeprefix("s3://").split("/")[0]


@dataclass(frozen=True)
class Store:
    """The API on an S3 store (moto), its settings, a token maker and the server's address."""

    client: TestClient
    settings: Settings
    make_token: Callable[..., str]
    endpoint: str

    def names(self) -> list[str]:
        """The object names in the bucket."""
        return list(object_names(self.endpoint, _bucket(self.settings)))


@pytest.fixture
def store(
    s3: TestClient,
    s3_settings: Settings,
    make_token: Callable[..., str],
    s3_endpoint: str,  # noqa: F811
) -> Store:
    return Store(s3, s3_settings, make_token, s3_endpoint)


def _put(client: TestClient, token: str, content: bytes, **body: object) -> dict[str, str]:
    started = client.post("/v1/datasets/uploads", json=body, headers=auth(token))
    assert started.status_code == 201, started.text
    ticket = started.json()
    assert ticket["method"] == "PUT" and ticket["max_bytes"] == MAX_UPLOAD_BYTES
    put = httpx.put(ticket["url"], content=content, timeout=30)  # straight to the store
    assert put.status_code == 200, put.text
    return dict(ticket)


def _complete(client: TestClient, token: str, ticket: dict[str, str], sha256: str) -> Any:
    body = {"sha256": sha256, "filename": "pool.csv"}
    return client.post(ticket["complete_url"], json=body, headers=auth(token))


def test_direct_upload_is_verified_then_registered(store: Store) -> None:
    token = store.make_token("submitter")
    content = make_csv(300)
    ticket = _put(store.client, token, content, size_bytes=len(content))
    done = _complete(store.client, token, ticket, hashlib.sha256(content).hexdigest().upper())
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["rows"] == 300 and body["columns"] == ["sex", "race", "qualified", "advanced"]
    assert body["filename"] == "pool.csv" and body["size_bytes"] == len(content)
    # the upload object is gone; the dataset sits under the project's prefix
    names = store.names()
    assert names == [f"tenants/acme/{body['id']}.csv"]
    with db.session_scope(store.settings.db_url) as session:
        row = get_dataset(session=session, project="acme", dataset_id=body["id"])
        assert row is not None and row.path == f"{store.settings.storage_url}/acme/{body['id']}.csv"
        assert row.etag == get_store(store.settings).head(f"acme/{body['id']}.csv").etag
    # completing twice finds nothing
    again = _complete(store.client, token, ticket, body["sha256"])
    assert again.status_code == 404 and again.json()["field"] == "upload_id"
    # a Parquet file goes the same way
    buf = io.BytesIO()
    pq.write_table(pa.table({"sex": ["f", "m"] * 50, "hired": [0, 1] * 50}), buf)
    ticket = _put(store.client, token, buf.getvalue())
    done = _complete(store.client, token, ticket, hashlib.sha256(buf.getvalue()).hexdigest())
    assert done.status_code == 201 and done.json()["rows"] == 100


def test_tampered_upload_is_refused_naming_sha256(store: Store) -> None:
    token = store.make_token("submitter")
    content = make_csv(200)
    ticket = _put(store.client, token, content[:-10])  # truncated on the way
    refused = _complete(store.client, token, ticket, hashlib.sha256(content).hexdigest())
    assert refused.status_code == 422
    assert refused.json()["field"] == "sha256"
    assert refused.json()["detail"].startswith("sha256: the uploaded object's SHA-256 is")
    assert store.names() == []  # nothing kept
    listed = store.client.get("/v1/datasets/" + ticket["id"], headers=auth(token))
    assert listed.status_code == 404


def test_limits_and_types_are_those_of_the_direct_upload(store: Store) -> None:
    token = store.make_token("submitter")
    declared = store.client.post(
        "/v1/datasets/uploads", json={"size_bytes": MAX_UPLOAD_BYTES + 1}, headers=auth(token)
    )
    assert declared.status_code == 413 and declared.json()["field"] == "size_bytes"
    # a client that lies about the size is caught at completion
    big = b"a,b\n" + b"1,2\n" * (MAX_UPLOAD_BYTES // 4 + 10)
    ticket = _put(store.client, token, big, size_bytes=10)
    refused = _complete(store.client, token, ticket, hashlib.sha256(big).hexdigest())
    assert refused.status_code == 413 and "BIASAUDIT_MAX_UPLOAD_BYTES" in refused.json()["detail"]
    # not a dataset: 415 naming the file, as POST /v1/datasets answers
    blob = b"\x00\x01\x02binary" * 100
    ticket = _put(store.client, token, blob)
    refused = _complete(store.client, token, ticket, hashlib.sha256(blob).hexdigest())
    assert refused.status_code == 415 and refused.json()["field"] == "file"
    bad = store.client.post(ticket["complete_url"], json={"sha256": "xyz"}, headers=auth(token))
    assert bad.status_code == 422 and "sha256" in bad.text
    assert store.names() == []


def test_another_project_cannot_complete_an_upload(store: Store) -> None:
    acme, other = store.make_token("submitter"), store.make_token("submitter", project="globex")
    content = make_csv(100)
    ticket = _put(store.client, acme, content)
    sha = hashlib.sha256(content).hexdigest()
    stolen = _complete(store.client, other, ticket, sha)
    assert stolen.status_code == 404 and stolen.json()["field"] == "upload_id"
    for weird in ("..%2F..%2Facme", "not-a-uuid"):
        probe = store.client.post(
            f"/v1/datasets/uploads/{weird}/complete", json={"sha256": sha}, headers=auth(other)
        )
        assert probe.status_code == 404
    assert store.names() == [f"tenants/.uploads/acme/{ticket['id']}"]
    mine = _complete(store.client, acme, ticket, sha)
    assert mine.status_code == 201
    # a reader of globex cannot see acme's dataset
    assert (
        store.client.get(f"/v1/datasets/{mine.json()['id']}", headers=auth(other)).status_code
        == 404
    )


def test_multipart_upload_lands_in_the_store(store: Store) -> None:
    response = upload(store.client, store.make_token("submitter"), make_csv())
    assert response.status_code == 201, response.text
    names = store.names()
    assert names == [f"tenants/acme/{response.json()['id']}.csv"]
    assert not list((store.settings.data_path / "acme").glob("*.csv"))  # no local copy kept
    key = f"acme/{response.json()['id']}.csv"
    with db.session_scope(store.settings.db_url) as session:  # ranged reads are pinned to it
        row = get_dataset(session=session, project="acme", dataset_id=response.json()["id"])
        assert row is not None and row.etag == get_store(store.settings).head(key).etag


def test_local_folder_server_says_to_use_the_multipart_route(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    refused = client.post("/v1/datasets/uploads", json={}, headers=auth(make_token("submitter")))
    assert refused.status_code == 409
    assert refused.json()["field"] == "uploads"
    assert "POST /v1/datasets" in refused.json()["detail"]


def test_models_go_to_the_store_and_workers_fetch_them_verified(
    store: Store,
    tmp_path: Path,
) -> None:
    from tests.audit.api.test_models_api import _hf_files, _post, _skops_bytes, _zip

    token = store.make_token("submitter")
    skops = _post(store.client, token, _skops_bytes(), name="m.skops")
    assert skops.status_code == 201, skops.text
    folder = _post(store.client, token, _zip(_hf_files()))
    assert folder.status_code == 201, folder.text
    sk_id, hf_id = skops.json()["id"], folder.json()["id"]
    names = store.names()
    assert f"tenants/acme/models/{sk_id}.skops" in names
    assert {n for n in names if hf_id in n} == {
        f"tenants/acme/models/{hf_id}/{name}" for name in _hf_files()
    }
    assert not list((store.settings.data_path / "acme" / "models").glob(f"{hf_id}*"))

    # a worker machine fetches each into its own project folder, checking the fingerprint
    objects, root = get_store(store.settings), tmp_path / "worker" / "acme"
    for model_id, body in ((sk_id, skops.json()), (hf_id, folder.json())):
        with db.session_scope(store.settings.db_url) as session:
            row = get_model(session=session, project="acme", model_id=model_id)
            assert row is not None
            address = row.path
        local = stored_model(objects, address, sha256=body["sha256"], root=root)
        assert local.parent == root / "models" and fingerprint(local) == body["sha256"]
    # tampered in the store: another machine refuses it, naming model.id
    key = f"acme/models/{hf_id}/config.json"
    objects.put_bytes(key, b'{"model_type": "bert", "num_labels": 3}', "application/json")
    with pytest.raises(AuditInputError, match="model.id: the stored object") as info:
        stored_model(objects, address, sha256=folder.json()["sha256"], root=tmp_path / "other")
    assert info.value.field == "model.id"
    assert not (tmp_path / "other" / "models" / hf_id).exists()


def test_presigned_post_carries_the_size_limit_in_its_policy(store: Store) -> None:
    """The form upload's signed policy limits the body (content-length-range): AWS S3 and
    MinIO refuse a larger one themselves. moto stores it anyway (it checks no policy), so
    here the registration's own size check is what refuses it."""
    token = store.make_token("submitter")
    content = make_csv(200)
    started = store.client.post(
        "/v1/datasets/uploads", json={"size_bytes": len(content)}, headers=auth(token)
    )
    assert started.status_code == 201, started.text
    ticket = started.json()
    form = ticket["post"]
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    assert ["content-length-range", 1, len(content)] in policy["conditions"]
    assert form["fields"]["key"] == f"tenants/.uploads/acme/{ticket['id']}"
    sent = httpx.post(form["url"], data=form["fields"], files={"file": content}, timeout=30)
    assert sent.status_code == 204, sent.text
    done = _complete(store.client, token, ticket, hashlib.sha256(content).hexdigest())
    assert done.status_code == 201 and done.json()["rows"] == 200
    # undeclared size: the policy's limit is the server's
    ticket = store.client.post("/v1/datasets/uploads", json={}, headers=auth(token)).json()
    policy = json.loads(base64.b64decode(ticket["post"]["fields"]["policy"]))
    assert ["content-length-range", 1, MAX_UPLOAD_BYTES] in policy["conditions"]
    big = b"a,b\n" + b"1,2\n" * (MAX_UPLOAD_BYTES // 4)  # moto accepts it...
    sent = httpx.post(ticket["post"]["url"], data=ticket["post"]["fields"], files={"file": big})
    assert sent.status_code == 204
    refused = _complete(store.client, token, ticket, hashlib.sha256(big).hexdigest())
    assert refused.status_code == 413 and refused.json()["field"] == "file"  # ...complete does not
