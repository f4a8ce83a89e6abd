"""Listing and deleting stored datasets and models (GET/DELETE /v1/datasets, /v1/models).

Deletion removes the bytes (file, columnar copy), keeps the row's sha256 for the
results that name it, records an event in the hash-chained log, and is refused
(409) while a queued or running audit or an enabled schedule needs the item.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit.settings import Settings
from audit.storage import db
from audit.storage.events import verify_log
from tests.audit.api.helpers import auth, finish_audit, make_csv, spec_for, upload


def _stored(settings: Settings, dataset_id: str) -> Path:
    return settings.data_path / "acme" / f"{dataset_id}.csv"


def _skops() -> bytes:
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    return bytes(sio.dumps(DummyClassifier().fit([[0], [1]], [0, 1])))


def _events(settings: Settings) -> list[dict[str, Any]]:
    from audit.storage.events import event_dict, list_events

    with db.session_scope(settings.db_url) as session:
        rows, _ = list_events(session=session, project="acme", limit=100)
        return [event_dict(r) for r in rows]


def test_list_is_the_projects_newest_first_with_usage_and_pages(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    second = upload(client, token, make_csv(40), name="small.csv").json()
    upload(client, make_token("submitter", project="globex"), make_csv(30))  # not listed
    queued = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    assert queued.status_code == 202, queued.text

    listed = client.get("/v1/datasets", headers=auth(make_token("reviewer")))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["count"], body["limit"], body["offset"]) == (2, 50, 0)
    assert [d["id"] for d in body["data"]] == [second["id"], dataset_id]
    newest, oldest = body["data"]
    assert (newest["rows"], newest["sha256"], newest["size_bytes"]) == (
        40,
        second["sha256"],
        second["size_bytes"],
    )
    assert newest["usage"] == {"audits": 0, "last_used_at": None}
    assert oldest["usage"]["audits"] == 1 and oldest["usage"]["last_used_at"] is not None
    assert oldest["columns"] == ["sex", "race", "qualified", "advanced"]
    assert "path" not in oldest and oldest["deleted_at"] is None

    page = client.get("/v1/datasets?limit=1&offset=1", headers=auth(token)).json()
    assert [d["id"] for d in page["data"]] == [dataset_id] and page["count"] == 2
    for query in ("limit=0", "limit=1001", "offset=-1"):
        refused = client.get(f"/v1/datasets?{query}", headers=auth(token))
        assert refused.status_code == 422, query
        assert refused.json()["field"] == query.split("=")[0]


def test_delete_removes_the_bytes_keeps_the_provenance_and_logs_it(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    audit_id = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token)).json()[
        "id"
    ]
    results = finish_audit(api_settings.db_url, audit_id)
    stored = _stored(api_settings, dataset_id)
    copy = stored.with_name(stored.name + ".columnar.parquet")
    copy.write_bytes(b"PAR1 made by the converter")  # stands in for the worker's copy
    sha256 = client.get(f"/v1/datasets/{dataset_id}", headers=auth(token)).json()["sha256"]

    deleted = client.delete(f"/v1/datasets/{dataset_id}", headers=auth(token))
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert not stored.exists() and not copy.exists()

    gone = client.get(f"/v1/datasets/{dataset_id}", headers=auth(token))
    assert gone.status_code == 410
    assert gone.json()["sha256"] == sha256 and gone.json()["deleted_at"]
    assert client.get("/v1/datasets", headers=auth(token)).json()["count"] == 0
    erased = client.get("/v1/datasets?deleted=true", headers=auth(token)).json()["data"]
    assert [(d["id"], d["sha256"]) for d in erased] == [(dataset_id, sha256)]
    assert erased[0]["deleted_by"].startswith("token ")
    again = client.delete(f"/v1/datasets/{dataset_id}", headers=auth(token))
    assert again.status_code == 410

    refused = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    assert refused.status_code == 404 and refused.json()["field"] == "dataset.id"
    assert f"dataset {dataset_id!r} was deleted at 20" in refused.json()["detail"]
    schedule = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    refused = client.post("/v1/schedules", json=schedule, headers=auth(make_token("admin")))
    assert refused.status_code == 404 and refused.json()["field"] == "spec.dataset.id"
    assert "was deleted at" in refused.json()["detail"]
    # past results and reports stay readable, and still name the dataset's sha256
    kept = client.get(f"/v1/audits/{audit_id}/results", headers=auth(token))
    assert kept.status_code == 200 and kept.json()["dataset"]["sha256"] == sha256
    assert kept.json()["verdict"] == results["verdict"]
    report = client.get(f"/v1/audits/{audit_id}/report", headers=auth(token))
    assert report.status_code == 200 and "html" in report.headers["content-type"]

    logged = [e for e in _events(api_settings) if e["action"] == "dataset.deleted"]
    assert len(logged) == 1 and logged[0]["subject"] == f"dataset/{dataset_id}"
    with db.session_scope(api_settings.db_url) as session:
        assert verify_log(session=session).intact


def test_delete_is_refused_while_an_audit_or_schedule_needs_it(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token, admin = make_token("submitter"), make_token("admin")
    audit_id = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token)).json()[
        "id"
    ]
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    schedule_id = client.post("/v1/schedules", json=body, headers=auth(admin)).json()["id"]

    refused = client.delete(f"/v1/datasets/{dataset_id}", headers=auth(token))
    assert refused.status_code == 409, refused.text
    assert refused.json()["audits"] == [audit_id]
    assert refused.json()["schedules"] == [schedule_id]
    assert audit_id in refused.json()["detail"] and schedule_id in refused.json()["detail"]
    assert _stored(api_settings, dataset_id).exists()  # nothing removed

    finish_audit(api_settings.db_url, audit_id)
    still = client.delete(f"/v1/datasets/{dataset_id}", headers=auth(token)).json()
    assert (still["audits"], still["schedules"]) == ([], [schedule_id])
    assert client.delete(f"/v1/schedules/{schedule_id}", headers=auth(admin)).status_code == 204
    assert client.delete(f"/v1/datasets/{dataset_id}", headers=auth(admin)).status_code == 204
    logged = [e for e in _events(api_settings) if e["action"] == "dataset.deleted"]
    assert [e["actor"][-7:] for e in logged] == ["(admin)"]  # who deleted it


def test_tenants_and_roles(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    other = make_token("admin", project="globex")
    assert client.delete(f"/v1/datasets/{dataset_id}", headers=auth(other)).status_code == 404
    assert client.get("/v1/datasets", headers=auth(other)).json()["count"] == 0
    reviewer = client.delete(f"/v1/datasets/{dataset_id}", headers=auth(make_token("reviewer")))
    assert reviewer.status_code == 403
    assert "delete" in reviewer.json()["detail"]
    assert _stored(api_settings, dataset_id).exists()
    assert client.delete(f"/v1/datasets/{dataset_id}", headers=auth(make_token("submitter")))
    # another project's deleted id stays a 404 (no existence leak), never a 410
    assert client.get(f"/v1/datasets/{dataset_id}", headers=auth(other)).status_code == 404
    foreign = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(other))
    assert foreign.status_code == 404 and "deleted" not in foreign.json()["detail"]
    assert client.delete("/v1/datasets/" + "x" * 300, headers=auth(other)).status_code == 404


@pytest.mark.slow  # the first .skops upload imports skops, scikit-learn and torch
def test_models_are_listed_and_deleted_alike(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    files = {"file": ("m.skops", _skops(), "application/octet-stream")}
    model = client.post("/v1/models", files=files, headers=auth(token)).json()
    stored = api_settings.data_path / "acme" / "models" / f"{model['id']}.skops"
    assert stored.is_file()
    listed = client.get("/v1/models", headers=auth(token)).json()
    assert [m["id"] for m in listed["data"]] == [model["id"]]
    assert listed["data"][0]["usage"]["audits"] == 0

    assert client.delete(f"/v1/models/{model['id']}", headers=auth(token)).status_code == 204
    assert not stored.exists()
    gone = client.get(f"/v1/models/{model['id']}", headers=auth(token))
    assert gone.status_code == 410 and gone.json()["sha256"] == model["sha256"]
    spec = spec_for(dataset_id)
    spec["model"] = {"kind": "sklearn", "id": model["id"], "features": ["sex"]}
    refused = client.post("/v1/audits", json=spec, headers=auth(token))
    assert refused.status_code == 404 and refused.json()["field"] == "model.id"
    assert f"model {model['id']!r} was deleted at" in refused.json()["detail"]
    assert client.get("/v1/models", headers=auth(token)).json()["count"] == 0
    logged = [e for e in _events(api_settings) if e["action"] == "model.deleted"]
    assert [e["subject"] for e in logged] == [f"model/{model['id']}"]
