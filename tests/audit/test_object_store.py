"""The object store abstraction: the local folder and an S3-compatible server (moto, a
child process on loopback) behave alike; keys stay in their project; a worker's copy
of a stored dataset is verified against the SHA-256 recorded at upload."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from audit.errors import AuditInputError
from audit.settings import Settings
from audit.storage.objects import (
    LocalStore,
    ObjectMissing,
    ObjectStore,
    check_key,
    export_results,
    get_store,
    local_copy,
)
from audit.storage.s3 import S3Store
from tests.s3_server import new_bucket, s3_client, s3_endpoint, storage_env  # noqa: F401

pytestmark = pytest.mark.services


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "data")
    endpoint = request.getfixturevalue("s3_endpoint")
    env = storage_env(endpoint, new_bucket(endpoint))
    settings = Settings.model_validate(
        {k.removeprefix("BIASAUDIT_").lower(): v for k, v in env.items()}
    )
    made = get_store(settings)
    assert isinstance(made, S3Store) and made.prefix == "tenants"
    return made


def test_put_head_read_range_copy_delete(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "upload.tmp"
    src.write_bytes(b"a,b\n1,2\n" * 1000)
    address = store.put_file("acme/one.csv", src)
    assert not src.exists()  # moved (local) or uploaded and removed (s3)
    assert store.key_of(address) == "acme/one.csv"
    info = store.head("acme/one.csv")
    assert info.size == 8000
    assert b"".join(store.iter_bytes("acme/one.csv")) == b"a,b\n1,2\n" * 1000
    assert store.read_range("acme/one.csv", 4, 12) == b"1,2\na,b\n"
    copied = store.copy("acme/one.csv", "acme/two.csv", etag=info.etag)
    assert store.key_of(copied) == "acme/two.csv" and store.head("acme/two.csv").size == 8000
    store.delete("acme/one.csv")
    with pytest.raises(ObjectMissing):
        store.head("acme/one.csv")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "acme/../other/x.csv", "acme//x", "acme/./x"])
def test_keys_cannot_leave_their_project(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="not a plain relative key"):
        store.address(key)
    with pytest.raises(ValueError):
        check_key(key)


def test_s3_addresses_stay_under_the_prefix(s3_endpoint: str) -> None:  # noqa: F811
    bucket = new_bucket(s3_endpoint)
    store = S3Store(bucket, "tenants", s3_client(s3_endpoint))
    address = store.put_bytes("acme/r.json", b"{}", "application/json")
    assert address == f"s3://{bucket}/tenants/acme/r.json"
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["tenants/acme/r.json"]
    assert store.key_of(f"s3://{bucket}/elsewhere/acme/r.json") is None
    assert store.key_of("s3://other-bucket/tenants/acme/r.json") is None


def test_local_copy_downloads_once_and_verifies(s3_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    bucket = new_bucket(s3_endpoint)
    store = S3Store(bucket, "p", s3_client(s3_endpoint))
    body = b"x,y\n" + b"1,0\n" * 500
    address = store.put_bytes("acme/d.csv", body, "text/csv")
    sha = hashlib.sha256(body).hexdigest()
    target = tmp_path / "cache" / "d.csv"
    assert local_copy(store, address, target, sha256=sha) == target
    assert target.read_bytes() == body
    # tampered in the store after upload: a fresh machine refuses it, naming dataset.id
    store.put_bytes("acme/d.csv", body + b"1,1\n", "text/csv")
    fresh = tmp_path / "other-machine" / "d.csv"
    with pytest.raises(AuditInputError, match="no longer has the SHA-256") as info:
        local_copy(store, address, fresh, sha256=sha)
    assert info.value.field == "dataset.id"
    leftover = [p.name for p in fresh.parent.iterdir()]
    assert not fresh.exists() and leftover == [".d.csv.copy.lock"]  # the cache's lock, no bytes
    store.delete("acme/d.csv")
    with pytest.raises(AuditInputError, match="missing from the object store"):
        local_copy(store, address, fresh, sha256=sha)
    # a local address is used as it is
    assert local_copy(LocalStore(tmp_path), str(target), fresh, sha256=sha) == target


def test_a_verified_download_is_not_hashed_again(
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's dataset sha256 of a copy just downloaded and verified is the digest
    the download was checked against: the file is read for the audit, not hashed again.
    A copy changed since (size or mtime) is hashed, as is any other file."""
    import probes.util
    from audit.engine.data import load_dataset
    from audit.engine.spec import DatasetSpec

    hashed: list[Path] = []
    real = probes.util.hash_file

    def counted(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(probes.util, "hash_file", counted)
    store = S3Store(new_bucket(s3_endpoint), "p", s3_client(s3_endpoint))
    body = b"sex,pred\n" + b"f,1\nm,0\n" * 500
    address = store.put_bytes("acme/d.csv", body, "text/csv")
    sha = hashlib.sha256(body).hexdigest()
    target = local_copy(store, address, tmp_path / "cache" / "d.csv", sha256=sha)
    spec = DatasetSpec(path=str(target), prediction="pred", protected=["sex"])
    loaded = load_dataset(spec, tmp_path, need_prediction=True)
    assert loaded.sha256 == sha and hashed == [] and len(loaded.frame) == 1000
    # rewritten in place on this machine (same size, new mtime): hashed again
    changed = body.replace(b"f,1", b"f,0", 1)
    target.write_bytes(changed)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert probes.util.file_sha256(target) == hashlib.sha256(changed).hexdigest() != sha
    assert hashed == [target]
    other = tmp_path / "other.csv"
    other.write_bytes(body)
    assert probes.util.file_sha256(other) == sha and hashed == [target, other]


def test_settings_refuse_a_bad_url_and_hide_the_secret() -> None:
    with pytest.raises(ValueError, match="BIASAUDIT_STORAGE_URL: 'http://x' is not an object"):
        Settings(storage_url="http://x")
    settings = Settings(
        storage_url="s3://b/p", storage_secret_access_key=SecretStr("very-secret-value")
    )
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in str(settings.model_dump())
    assert isinstance(get_store(Settings()), LocalStore)


def test_results_are_exported_to_a_remote_store_only(
    s3_endpoint: str,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = new_bucket(s3_endpoint)
    store = S3Store(bucket, "p", s3_client(s3_endpoint))
    doc = {"schema_version": 1, "verdict": "pass", "probes": [{"x": 0.1 + 0.2}]}
    export_results(store, "acme", "a1", results=doc, html="<p>ok</p>")
    client = s3_client(s3_endpoint)
    body = client.get_object(Bucket=bucket, Key="p/acme/audits/a1/results.json")["Body"].read()
    assert json.loads(body) == doc
    report = client.get_object(Bucket=bucket, Key="p/acme/audits/a1/report.html")
    assert report["Body"].read() == b"<p>ok</p>" and report["ContentType"].startswith("text/html")
    local = LocalStore(tmp_path)
    export_results(local, "acme", "a1", results=doc, html="x")
    assert list(tmp_path.iterdir()) == []  # the database is the record; no folder copy
    gone = S3Store("no-such-bucket", "p", s3_client(s3_endpoint))
    export_results(gone, "acme", "a2", results=doc, html="x")  # logged, not raised
    assert "results of audit a2 not copied to the object store" in caplog.text
