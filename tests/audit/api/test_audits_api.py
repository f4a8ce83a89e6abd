"""Submitting, listing, reading and cancelling audits over HTTP, with the real broker."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from audit.api.app import create_app
from audit.queue import TASK_RUN_AUDIT, queue_for
from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Audit
from tests.audit.api.helpers import (
    auth,
    claim,
    finish_audit,
    queued_messages,
    spec_for,
)
from tests.pdf_tools import pdf_text

pytestmark = pytest.mark.postgres


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("submitter")


def _audits(settings: Settings) -> list[Audit]:
    with db.session_scope(settings.db_url) as session:
        return list(session.scalars(select(Audit).order_by(Audit.created_at)))


def test_submit_commits_then_publishes_only_the_id(
    client: TestClient, token: str, dataset_id: str, redis_db: redis.Redis, api_settings: Settings
) -> None:
    response = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"id": body["id"], "status": "queued"}
    assert response.headers["location"] == f"/v1/audits/{body['id']}"
    [row] = _audits(api_settings)
    assert (row.id, row.status, row.project) == (body["id"], "queued", "acme")
    assert row.spec["dataset"]["id"] == dataset_id  # kept for the worker to resolve
    assert row.dataset_sha256 is not None
    [message] = queued_messages(redis_db, "cpu")
    assert redis_db.llen("gpu") == 0
    assert message["headers"]["task"] == TASK_RUN_AUDIT
    assert message["content-type"] == "application/json"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([body["id"]], {})
    raw = json.dumps(message)
    assert token not in raw and token[3:15] not in raw
    assert "Authorization" not in raw and "Bearer" not in raw


def test_queue_routing() -> None:
    assert queue_for({"model": {"kind": "predictions"}}) == "cpu"
    assert queue_for({}) == "cpu"
    for kind in ("sklearn", "huggingface", "onnx"):
        assert queue_for({"model": {"kind": kind, "path": "m"}}) == "gpu"


def test_model_audit_goes_to_gpu_queue_and_paths_are_confined(
    client: TestClient, token: str, dataset_id: str, redis_db: redis.Redis, api_settings: Settings
) -> None:
    folder = api_settings.data_path / "acme" / "models"
    folder.mkdir(parents=True)
    (folder / "m.skops").write_bytes(b"placeholder")
    spec = spec_for(dataset_id, model={"kind": "sklearn", "path": "models/m.skops"})
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 202, response.text
    assert [m["headers"]["task"] for m in queued_messages(redis_db, "gpu")] == [TASK_RUN_AUDIT]
    assert redis_db.llen("cpu") == 0
    [row] = _audits(api_settings)
    assert row.spec["model"]["path"] == "models/m.skops"  # project-relative: no server path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.pop("name"), "name"),
        (lambda s: s["dataset"].update(protected=[]), "dataset.protected"),
        (lambda s: s["dataset"].update(protected="sex"), "dataset.protected"),
        (lambda s: s.update(domain="insurance"), "domain"),
        (lambda s: s.update(probes=[{"kind": "no-such-probe"}]), "probes[0].kind"),
        (lambda s: s.update(probes=[{"kind": "demographic", "bogus": 1}]), "probes[0].bogus"),
        (lambda s: s.update(policy={"min_impact_ratio": 2}), "policy.min_impact_ratio"),
        (lambda s: s.update(unknown_key=1), "unknown_key"),
    ],
)
def test_invalid_spec_is_422_naming_the_field(
    client: TestClient,
    token: str,
    dataset_id: str,
    api_settings: Settings,
    redis_db: redis.Redis,
    mutate: Callable[[dict], object],
    field: str,
) -> None:
    spec = spec_for(dataset_id)
    mutate(spec)
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert any(e["field"] == field for e in response.json()["errors"])
    assert _audits(api_settings) == []
    assert redis_db.llen("cpu") == 0


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        (b"{not json", "application/json", 422),
        (b"[1, 2]", "application/json", 422),
        (b"name: x", "text/plain", 415),  # YAML is accepted as application/yaml (test_yaml_body)
        (b"", "application/json", 422),
    ],
)
def test_body_that_is_not_a_json_spec(
    client: TestClient, token: str, content: bytes, ctype: str, status: int
) -> None:
    response = client.post(
        "/v1/audits", content=content, headers={**auth(token), "Content-Type": ctype}
    )
    assert response.status_code == status, response.text
    assert response.json()["field"] in ("body", "spec")


def test_unknown_dataset_is_404(client: TestClient, token: str, api_settings: Settings) -> None:
    response = client.post(
        "/v1/audits", json=spec_for("00000000-0000-4000-8000-000000000000"), headers=auth(token)
    )
    assert response.status_code == 404
    assert response.json()["field"] == "dataset.id"
    assert _audits(api_settings) == []


@pytest.mark.parametrize(
    ("dataset", "field"),
    [
        ({"path": "../../../../etc/passwd"}, "dataset.path"),
        ({"path": "/etc/passwd"}, "dataset.path"),
        ({"path": "missing.csv"}, "dataset.path"),
        ({"path": "x.csv", "id": "00000000-0000-4000-8000-000000000000"}, "dataset.path"),
        ({}, "dataset"),
    ],
)
def test_dataset_paths_outside_the_project_folder_are_refused(
    client: TestClient, token: str, api_settings: Settings, dataset: dict, field: str
) -> None:
    spec = spec_for("x")
    spec["dataset"] = {"protected": ["sex"], "prediction": "advanced", **dataset}
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert _audits(api_settings) == []


def test_probe_file_paths_are_confined(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings
) -> None:
    (api_settings.data_path / "acme" / "m").mkdir()
    spec = spec_for(
        dataset_id,
        probes=[{"kind": "counterfactual-text", "lexicon_path": "../../../etc/hosts"}],
        model={"kind": "huggingface", "path": "m", "task": "text-classification"},
    )
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 422
    assert response.json()["field"] == "probes[0].lexicon_path"
    assert "outside" in response.json()["detail"]


def test_dataset_path_inside_the_project_folder_is_stored_project_relative(
    client: TestClient, token: str, api_settings: Settings, dataset_id: str
) -> None:
    stored = next((api_settings.data_path / "acme").glob(f"{dataset_id}.csv"))
    spec = spec_for(dataset_id)
    spec["dataset"] = {**spec["dataset"], "path": f"./sub/../{stored.name}"}
    del spec["dataset"]["id"]
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 202, response.text
    [row] = _audits(api_settings)
    assert row.spec["dataset"]["path"] == stored.name


def test_idempotency_key(
    client: TestClient,
    make_token: Callable[..., str],
    dataset_id: str,
    redis_db: redis.Redis,
    api_settings: Settings,
) -> None:
    token = make_token("submitter")
    headers = {**auth(token), "Idempotency-Key": "order-42"}
    first = client.post("/v1/audits", json=spec_for(dataset_id), headers=headers)
    again = client.post("/v1/audits", json=spec_for(dataset_id), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert len(_audits(api_settings)) == 1
    assert redis_db.llen("cpu") == 1  # the retry published nothing new
    other = client.post("/v1/audits", json=spec_for(dataset_id, name="other"), headers=headers)
    assert other.status_code == 409
    assert other.json()["field"] == "Idempotency-Key"
    assert first.json()["id"] in other.json()["detail"]
    # keys are per project: the same key elsewhere is a different audit
    elsewhere = make_token("admin", "globex")
    ds = client.post(
        "/v1/datasets",
        files={
            "file": (
                "d.csv",
                (api_settings.data_path / "acme" / f"{dataset_id}.csv").read_bytes(),
                "text/csv",
            )
        },
        headers=auth(elsewhere),
    ).json()["id"]
    theirs = client.post(
        "/v1/audits", json=spec_for(ds), headers={**auth(elsewhere), "Idempotency-Key": "order-42"}
    )
    assert theirs.status_code == 202
    assert theirs.json()["id"] != first.json()["id"]
    # after it finished, a retry still answers with the first audit (and its status)
    finish_audit(api_settings.db_url, first.json()["id"])
    late = client.post("/v1/audits", json=spec_for(dataset_id), headers=headers)
    assert late.status_code == 202
    assert late.json() == {"id": first.json()["id"], "status": "succeeded"}


def test_broker_down_still_202_and_row_stays_queued(
    token: str, dataset_id: str, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/15"})
    with TestClient(create_app(settings)) as down, caplog.at_level(logging.WARNING):
        response = down.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
        assert response.status_code == 202, response.text
    [row] = _audits(api_settings)
    assert (row.id, row.status) == (response.json()["id"], "queued")
    warnings = [r for r in caplog.records if "publish failed" in r.getMessage()]
    assert warnings and warnings[0].levelno == logging.WARNING


def test_database_down_is_503_and_nothing_is_written(
    token: str, dataset_id: str, api_settings: Settings, redis_db: redis.Redis
) -> None:
    settings = api_settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/biasaudit"}
    )
    folder = api_settings.data_path / "acme"
    files_before = sorted(folder.iterdir())
    try:
        with TestClient(create_app(settings)) as down:
            response = down.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
            assert response.status_code == 503
            assert response.json() == {"detail": response.json()["detail"], "field": None}
            assert "database unavailable" in response.json()["detail"]
            upload = down.post(
                "/v1/datasets",
                files={"file": ("d.csv", b"a,b\n1,2\n", "text/csv")},
                headers=auth(token),
            )
            assert upload.status_code == 503
            ready = down.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": "unavailable", "broker": "ok"}
    finally:
        db.dispose_engines()
    assert _audits(api_settings) == []
    assert redis_db.llen("cpu") == 0
    assert sorted(folder.iterdir()) == files_before


def _submit(client: TestClient, token: str, dataset_id: str, name: str) -> str:
    response = client.post("/v1/audits", json=spec_for(dataset_id, name=name), headers=auth(token))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_list_pagination_and_filters(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings
) -> None:
    ids = [_submit(client, token, dataset_id, f"a{i}") for i in range(5)]
    base = datetime(2030, 1, 1, tzinfo=UTC)
    with db.session_scope(api_settings.db_url) as session:  # spread creation times
        for i, audit_id in enumerate(ids):
            session.execute(
                update(Audit)
                .where(Audit.id == audit_id)
                .values(created_at=base + timedelta(days=i))
            )
    pages = [
        client.get("/v1/audits", params={"limit": 2, "offset": o}, headers=auth(token)).json()
        for o in (0, 2, 4)
    ]
    assert [p["count"] for p in pages] == [5, 5, 5]
    assert [a["id"] for p in pages for a in p["data"]] == ids[::-1]  # newest first
    client.post(f"/v1/audits/{ids[0]}/cancel", headers=auth(token))
    finish_audit(api_settings.db_url, ids[1])
    sha = "ab" * 32
    with db.session_scope(api_settings.db_url) as session:
        session.execute(update(Audit).where(Audit.id == ids[2]).values(model_sha256=sha))

    def listed(**params: str) -> list[str]:
        response = client.get("/v1/audits", params=params, headers=auth(token))
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["data"]]

    assert listed(status="cancelled") == [ids[0]]
    assert listed(status="succeeded") == [ids[1]]
    assert listed(status="queued") == ids[2:][::-1]
    assert listed(verdict="fail") == [ids[1]]  # the planted disparity fails the 4/5 rule
    assert listed(verdict="pass") == []
    assert listed(model=sha) == [ids[2]]
    assert listed(created_after="2030-01-03T00:00:00Z") == [ids[4], ids[3], ids[2]]
    assert listed(created_before="2030-01-03T00:00:00Z") == [ids[1], ids[0]]
    assert listed(created_after="2030-01-02T00:00:00", created_before="2030-01-04T00:00:00") == [
        ids[2],
        ids[1],
    ]
    invalid: list[tuple[dict[str, int | str], str]] = [
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "done"}, "status"),
        ({"model": "xyz"}, "model"),
        ({"created_after": "yesterday"}, "created_after"),
    ]
    for params, field in invalid:
        response = client.get("/v1/audits", params=params, headers=auth(token))
        assert response.status_code == 422, params
        assert response.json()["field"] == field


def test_status_results_and_report(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings, tmp_path: Path
) -> None:
    audit_id = _submit(client, token, dataset_id, "r")
    status = client.get(f"/v1/audits/{audit_id}", headers=auth(token)).json()
    assert {k: status[k] for k in ("id", "status", "progress", "error")} == {
        "id": audit_id,
        "status": "queued",
        "progress": 0.0,
        "error": None,
    }
    early = client.get(f"/v1/audits/{audit_id}/results", headers=auth(token))
    assert early.status_code == 409
    assert "queued" in early.json()["detail"]
    results = finish_audit(api_settings.db_url, audit_id)
    done = client.get(f"/v1/audits/{audit_id}", headers=auth(token)).json()
    assert (done["status"], done["progress"], done["verdict"]) == (
        "succeeded",
        1.0,
        results["verdict"],
    )
    served = client.get(f"/v1/audits/{audit_id}/results", headers=auth(token))
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(results))
    html = client.get(f"/v1/audits/{audit_id}/report", headers=auth(token))
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert audit_id in html.text
    assert results["verdict"].upper() in html.text
    pdf = client.get(f"/v1/audits/{audit_id}/report", params={"format": "pdf"}, headers=auth(token))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    text = pdf_text(pdf.content, tmp_path)
    assert results["verdict"].upper() in text and "Findings" in text
    csv = client.get(f"/v1/audits/{audit_id}/report", params={"format": "csv"}, headers=auth(token))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.startswith("probe,attribute,group,metric,value,ci_low,ci_high,n,p_value")
    bad = client.get(
        f"/v1/audits/{audit_id}/report", params={"format": "docx"}, headers=auth(token)
    )
    assert bad.status_code == 422 and bad.json()["field"] == "format"


def test_cancel(client: TestClient, token: str, dataset_id: str, api_settings: Settings) -> None:
    queued, running, done = (_submit(client, token, dataset_id, n) for n in ("q", "r", "d"))
    response = client.post(f"/v1/audits/{queued}/cancel", headers=auth(token))
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("cancelled", True)
    claim(api_settings.db_url, running)
    response = client.post(f"/v1/audits/{running}/cancel", headers=auth(token))
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    finish_audit(api_settings.db_url, done)
    response = client.post(f"/v1/audits/{done}/cancel", headers=auth(token))
    assert response.status_code == 409
    assert "succeeded" in response.json()["detail"]
    assert client.get(f"/v1/audits/{done}", headers=auth(token)).json()["status"] == "succeeded"
    again = client.post(f"/v1/audits/{queued}/cancel", headers=auth(token))
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    missing = client.post("/v1/audits/nope/cancel", headers=auth(token))
    assert missing.status_code == 404
