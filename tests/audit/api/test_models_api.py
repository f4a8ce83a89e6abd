"""Model uploads (POST /v1/models): .skops and Hugging Face archives, each refusal, tenancy."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from audit.api.app import create_app
from audit.settings import Settings
from audit.storage import db
from audit.storage.models import ModelArtifact
from probes.models.fingerprint import fingerprint
from tests.audit.api.helpers import auth, spec_for


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("submitter")


def _skops_bytes(estimator: Any = None) -> bytes:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    if estimator is None:
        x = np.array([[0.0], [1.0], [2.0], [3.0]])
        estimator = LogisticRegression().fit(x, [0, 0, 1, 1])
    return bytes(sio.dumps(estimator))


def _hf_files(**extra: bytes) -> dict[str, bytes]:
    files = {
        "config.json": json.dumps({"model_type": "bert", "num_labels": 2}).encode(),
        "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
        "tokenizer.json": b'{"version": "1.0"}',
    }
    files.update(extra)
    return files


def _zip(files: dict[str, bytes], *, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def _tar(files: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink is not None:
            link = tarfile.TarInfo("tokenizer_config.json")
            link.type = tarfile.SYMTYPE
            link.linkname = symlink
            tf.addfile(link)
    return buf.getvalue()


def _post(client: TestClient, token: str, content: bytes, name: str = "model.zip") -> Any:
    files = {"file": (name, content, "application/octet-stream")}
    return client.post("/v1/models", files=files, headers=auth(token))


def _models_folder(settings: Settings) -> Path:
    return settings.data_path / "acme" / "models"


def _assert_nothing_stored(settings: Settings) -> None:
    folder = _models_folder(settings)
    leftovers = list(folder.iterdir()) if folder.exists() else []
    assert leftovers == [], f"files left behind: {leftovers}"
    project = settings.data_path / "acme"
    assert not list(project.glob(".*.upload.tmp"))
    with db.session_scope(settings.db_url) as session:
        assert session.query(ModelArtifact).count() == 0


def test_skops_upload_is_checked_stored_and_private_to_its_project(
    client: TestClient, token: str, make_token: Callable[..., str], api_settings: Settings
) -> None:
    data = _skops_bytes()
    response = _post(client, token, data, name="../../credit.skops")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "sklearn"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["filename"] == "../../credit.skops" and body["files"] == 1
    assert "path" not in body
    stored = _models_folder(api_settings) / f"{body['id']}.skops"
    assert stored.read_bytes() == data
    assert client.get(f"/v1/models/{body['id']}", headers=auth(token)).json() == body
    other = make_token("submitter", project="globex")
    assert client.get(f"/v1/models/{body['id']}", headers=auth(other)).status_code == 404


def test_pickles_are_415_and_nothing_is_kept(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    buf = io.BytesIO()
    joblib.dump(LogisticRegression(), buf)
    for content in (buf.getvalue(), pickle.dumps(LogisticRegression(), protocol=0)):
        response = _post(client, token, content, name="model.skops")
        assert response.status_code == 415, response.text
        assert response.json()["field"] == "file"
        assert "pickle" in response.json()["detail"]
    _assert_nothing_stored(api_settings)


def test_skops_with_types_off_the_allowlist_is_422_naming_them(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    from sklearn.preprocessing import FunctionTransformer

    response = _post(client, token, _skops_bytes(FunctionTransformer(func=os.system)), "m.skops")
    assert response.status_code == 422, response.text
    assert "system" in response.json()["detail"]
    _assert_nothing_stored(api_settings)


def test_hugging_face_zip_and_tar_are_unpacked_checked_and_fingerprinted(
    client: TestClient, token: str, api_settings: Settings, tmp_path: Path
) -> None:
    local = tmp_path / "screener"
    local.mkdir()
    for name, data in _hf_files().items():
        (local / name).write_bytes(data)
    for content, name in (
        (_zip(_hf_files(), prefix="screener/"), "screener.zip"),
        (_tar(_hf_files()), "screener.tar.gz"),
    ):
        response = _post(client, token, content, name=name)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["kind"] == "huggingface" and body["files"] == 3
        assert body["sha256"] == fingerprint(local)  # what a local run reports
        folder = _models_folder(api_settings) / body["id"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(_hf_files())
    assert not [p for p in _models_folder(api_settings).iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        (lambda: _zip({**_hf_files(), "../evil.json": b"{}"}), 422, "'..'"),
        (lambda: _zip({**_hf_files(), "/etc/evil.json": b"{}"}), 422, "absolute"),
        (lambda: _zip({**_hf_files(), "C:/evil.json": b"{}"}), 422, "absolute"),
        (lambda: _zip({**_hf_files(), "modeling_evil.py": b"import os"}), 422, "Python code"),
        (lambda: _zip({**_hf_files(), "pytorch_model.bin": b"\x80\x02."}), 415, "pickle"),
        (lambda: _zip({**_hf_files(), "extra.dat": pickle.dumps({"a": 1})}), 415, "pickle"),
        (
            lambda: _zip(_hf_files(**{"config.json": b'{"auto_map": {"AutoModel": "x.Y"}}'})),
            422,
            "auto_map",
        ),
        (lambda: _zip({"tokenizer.json": b"{}", "model.safetensors": b"x"}), 422, "config.json"),
        (lambda: _zip({"config.json": b"{}"}), 422, "no weights"),
        (lambda: _tar(_hf_files(), symlink="/etc/passwd"), 422, "symlink"),
        (lambda: b"sex,race\nF,B\n", 415, ".skops"),
    ],
)
def test_unsafe_archives_are_refused_with_nothing_kept(
    client: TestClient,
    token: str,
    api_settings: Settings,
    content: Callable[[], bytes],
    status: int,
    needle: str,
) -> None:
    response = _post(client, token, content())
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == "file"
    assert needle in body["detail"]
    assert str(api_settings.data_path) not in body["detail"]  # no server folder in messages
    _assert_nothing_stored(api_settings)


def test_corrupt_and_encrypted_archives_are_422(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    good = _zip(_hf_files())
    at = good.index(b"model.safetensors") + 40  # inside the first compressed member
    corrupt = good[:at] + bytes(b ^ 0xFF for b in good[at : at + 20]) + good[at + 20 :]
    encrypted = bytearray(good)
    for offset in range(len(good) - 4):  # set the "encrypted" flag of every entry
        if good[offset : offset + 4] in (b"PK\x03\x04", b"PK\x01\x02"):
            flag_at = offset + (6 if good[offset + 2] == 3 else 8)
            encrypted[flag_at] |= 1
    truncated = good[: len(good) // 2] + b"\0" * 10  # no central directory: not a zip
    for content, status, needle in (
        (corrupt, 422, "unreadable archive (BadZipFile)"),
        (bytes(encrypted), 422, "unreadable archive (RuntimeError)"),
        (truncated, 415, "not a model this service accepts"),
    ):
        response = _post(client, token, content)
        assert response.status_code == status, response.text
        assert needle in response.json()["detail"]
    _assert_nothing_stored(api_settings)


def test_zip_symlink_entry_is_refused(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _hf_files().items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("vocab.txt")
        link.external_attr = (0o120777 << 16) | 0
        zf.writestr(link, "/etc/passwd")
    response = _post(client, token, buf.getvalue())
    assert response.status_code == 422, response.text
    assert "symlink" in response.json()["detail"]
    _assert_nothing_stored(api_settings)


@pytest.fixture
def small_client(api_settings: Settings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(
        update={"max_model_files": 5, "max_model_unpacked_bytes": 200_000}
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_bombs_and_entry_floods_are_413(
    small_client: TestClient, token: str, api_settings: Settings
) -> None:
    bomb = _zip(_hf_files(**{"vocab.txt": b"\0" * 5_000_000}))
    assert len(bomb) < 50_000  # small on the wire, large unpacked
    response = _post(small_client, token, bomb)
    assert response.status_code == 413, response.text
    assert "decompression bomb" in response.json()["detail"]
    flood = _zip(_hf_files(**{f"f{i}.txt": b"x" for i in range(10)}))
    response = _post(small_client, token, flood)
    assert response.status_code == 413, response.text
    assert "BIASAUDIT_MAX_MODEL_FILES" in response.json()["detail"]
    _assert_nothing_stored(api_settings)


def test_a_spec_names_an_uploaded_model_by_id(
    client: TestClient,
    token: str,
    make_token: Callable[..., str],
    dataset_id: str,
    api_settings: Settings,
) -> None:
    body = _skops_bytes()
    model_id = _post(client, token, body, "m.skops").json()["id"]
    spec = spec_for(dataset_id, model={"kind": "sklearn", "id": model_id})
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 202, response.text
    wrong_kind = spec_for(
        dataset_id, model={"kind": "huggingface", "task": "text-classification", "id": model_id}
    )
    response = client.post("/v1/audits", json=wrong_kind, headers=auth(token))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "model.kind"
    # a fingerprint given with the id must be the upload's (the worker checks the bytes)
    right = spec_for(
        dataset_id,
        model={"kind": "sklearn", "id": model_id, "sha256": hashlib.sha256(body).hexdigest()},
    )
    assert client.post("/v1/audits", json=right, headers=auth(token)).status_code == 202
    wrong = spec_for(dataset_id, model={"kind": "sklearn", "id": model_id, "sha256": "0" * 64})
    response = client.post("/v1/audits", json=wrong, headers=auth(token))
    assert response.status_code == 422 and response.json()["field"] == "model.sha256"
    assert model_id in response.json()["detail"]
    both = spec_for(dataset_id, model={"kind": "sklearn", "id": model_id, "path": "x.skops"})
    response = client.post("/v1/audits", json=both, headers=auth(token))
    assert response.status_code == 422 and response.json()["field"] == "model.path"
    # another project's model id is as unknown as one that never existed
    other = make_token("submitter", project="globex")
    from tests.audit.api.helpers import make_csv, upload

    other_dataset = upload(client, other, make_csv()).json()["id"]
    theirs = spec_for(other_dataset, model={"kind": "sklearn", "id": model_id})
    response = client.post("/v1/audits", json=theirs, headers=auth(other))
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "model.id"


def test_a_schedule_names_an_uploaded_model_of_its_own_project_only(
    client: TestClient, token: str, make_token: Callable[..., str], dataset_id: str
) -> None:
    model_id = _post(client, token, _skops_bytes(), "m.skops").json()["id"]
    spec = spec_for(dataset_id, model={"kind": "sklearn", "id": model_id})
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec}
    created = client.post("/v1/schedules", json=body, headers=auth(make_token("admin")))
    assert created.status_code == 201, created.text
    from tests.audit.api.helpers import make_csv, upload

    their_data = upload(client, make_token("submitter", project="globex"), make_csv())
    their_spec = spec_for(their_data.json()["id"], model={"kind": "sklearn", "id": model_id})
    theirs = make_token("admin", project="globex")
    response = client.post("/v1/schedules", json={**body, "spec": their_spec}, headers=auth(theirs))
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "spec.model.id"
