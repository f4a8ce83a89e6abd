"""Submissions the worker would refuse at once are refused at submission (422, 404), and
data-free specs are accepted; real PostgreSQL and Redis, nothing recorded on refusal."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from audit.api.app import create_app
from audit.settings import Settings, get_settings
from audit.storage import db
from audit.storage.models import Audit
from tests.audit.api.helpers import auth, make_csv, spec_for, upload

pytestmark = pytest.mark.postgres


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("submitter")


def _count(settings: Settings) -> int:
    with db.session_scope(settings.db_url) as session:
        return int(session.scalar(select(func.count()).select_from(Audit)) or 0)


def _refused(
    client: TestClient, token: str, spec: dict[str, Any], field: str, *, status: int = 422
) -> str:
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field, body
    return str(body["detail"])


@pytest.mark.parametrize("trusted", [True, "true", 1])
def test_trusted_models_are_refused_over_http(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings, trusted: object
) -> None:
    (api_settings.data_path / "acme" / "m.joblib").write_bytes(b"placeholder")
    spec = spec_for(dataset_id, model={"kind": "sklearn", "path": "m.joblib", "trusted": trusted})
    detail = _refused(client, token, spec, "model.trusted")
    assert "registered:NAME" in detail
    assert _count(api_settings) == 0


def test_schedules_refuse_trusted_models_too(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    (api_settings.data_path / "acme" / "m.joblib").write_bytes(b"placeholder")
    spec = spec_for(dataset_id, model={"kind": "sklearn", "path": "m.joblib", "trusted": True})
    response = client.post(
        "/v1/schedules",
        json={"name": "weekly", "cron": "0 3 * * 1", "spec": spec},
        headers=auth(make_token("admin")),
    )
    assert response.status_code == 422 and response.json()["field"] == "spec.model.trusted"


def test_an_upload_is_never_a_model(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings
) -> None:
    for path in (f"{dataset_id}.csv", ".", "sub/..", f"./{dataset_id}.csv"):
        (api_settings.data_path / "acme" / "sub").mkdir(exist_ok=True)
        spec = spec_for(dataset_id, model={"kind": "sklearn", "path": path})
        assert "datasets storage" in _refused(client, token, spec, "model.path")
    assert _count(api_settings) == 0


@pytest.fixture
def registry(
    api_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Path]]:
    folder = tmp_path / "registered"
    (folder / "acme").mkdir(parents=True)
    (folder / "acme" / "credit.joblib").write_bytes(b"placeholder")
    monkeypatch.setenv("BIASAUDIT_TRUSTED_MODEL_DIR", str(folder))
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as c:
        yield c, folder


def test_registered_models_are_named_not_trusted(
    registry: tuple[TestClient, Path],
    make_token: Callable[..., str],
    dataset_id: str,
    api_settings: Settings,
) -> None:
    client, _ = registry
    token = make_token("submitter")
    spec = spec_for(dataset_id, model={"kind": "sklearn", "path": "registered:credit.joblib"})
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 202, response.text
    with db.session_scope(api_settings.db_url) as session:
        row = session.get(Audit, response.json()["id"])
        assert row is not None
        assert row.spec["model"] == {"kind": "sklearn", "path": "registered:credit.joblib"}
    other = make_token("submitter", "globex")  # registered per project
    theirs = upload(client, other, make_csv()).json()["id"]
    spec = spec_for(theirs, model={"kind": "sklearn", "path": "registered:credit.joblib"})
    assert "no registered model" in _refused(client, other, spec, "model.path")


@pytest.mark.parametrize(
    ("dataset", "phrase"),
    [
        ({"path": ""}, "dataset"),  # "" is no dataset: the demographic probe needs one
        ({"path": "."}, "is a folder"),
        ({"path": "sub"}, "is a folder"),
        ({"path": "../../../../etc/passwd"}, "outside"),
        ({"path": "/proc/self/environ"}, "outside"),
        ({"path": "~/x.csv"}, "file not found"),
        ({"path": "file:///etc/passwd"}, "file not found"),
        ({"path": "%2e%2e/%2e%2e/etc/passwd"}, "file not found"),
        ({"path": "link.csv"}, "outside"),
    ],
)
def test_unusable_dataset_paths_are_422_without_server_paths(
    client: TestClient, token: str, api_settings: Settings, dataset: dict, phrase: str
) -> None:
    folder = api_settings.data_path / "acme"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    if not (folder / "link.csv").is_symlink():
        os.symlink("/etc/hostname", folder / "link.csv")
    spec = spec_for("x")
    spec["dataset"] = {"protected": ["sex"], "prediction": "advanced", **dataset}
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith("dataset")
    assert phrase in response.json()["detail"]
    assert str(api_settings.data_path) not in response.text
    assert _count(api_settings) == 0


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        (lambda s: s["dataset"].pop("prediction"), "dataset.prediction", "required when"),
        (lambda s: s.update(model={"kind": "sklearn"}), "model.path", "required for"),
        (
            lambda s: s.update(model={"kind": "huggingface", "path": "m"}),
            "model.task",
            "required",
        ),
        (lambda s: s["dataset"].update(label="hired"), "dataset.label", "'hired' not found"),
        (
            lambda s: s["dataset"].update(protected=["sex", "age"]),
            "dataset.protected[1]",
            "'age' not found",
        ),
        (lambda s: s["dataset"].update(strata="dept"), "dataset.strata", "'dept' not found"),
    ],
)
def test_specs_the_worker_would_refuse_are_422(
    client: TestClient,
    token: str,
    dataset_id: str,
    api_settings: Settings,
    change: Callable[[dict[str, Any]], object],
    field: str,
    phrase: str,
) -> None:
    (api_settings.data_path / "acme" / "m").mkdir(exist_ok=True)
    spec = spec_for(dataset_id)
    change(spec)
    assert phrase in _refused(client, token, spec, field)
    assert _count(api_settings) == 0


def test_protected_columns_over_max_levels_are_refused_by_name(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    lines = ["applicant_id,sex,advanced"] + [f"a{i},{'fm'[i % 2]},{i % 2}" for i in range(1_500)]
    stored = upload(client, token, ("\n".join(lines) + "\n").encode()).json()
    assert stored["column_levels"] == {"applicant_id": 1_001, "sex": 2, "advanced": 2}
    spec: dict[str, Any] = {
        "name": "ids",
        "dataset": {"id": stored["id"], "prediction": "advanced", "protected": ["sex"]},
    }
    spec["dataset"]["protected"] = ["sex", "applicant_id"]
    detail = _refused(client, token, spec, "dataset.protected[1]")
    assert "'applicant_id' has more than 1000 distinct values" in detail
    assert "policy.max_levels=1000" in detail
    spec["dataset"]["protected"] = ["sex"]
    spec["dataset"]["strata"] = "applicant_id"  # a stratum is a few groups too
    detail = _refused(client, token, spec, "dataset.strata")
    assert detail.startswith("dataset.strata: column 'applicant_id' has more than 1000 distinct")
    spec["dataset"]["protected"] = ["sex", "applicant_id"]
    del spec["dataset"]["strata"]
    spec["policy"] = {"max_levels": 1_000_000}  # more than was counted: the worker decides
    assert client.post("/v1/audits", json=spec, headers=auth(token)).status_code == 202
    spec["dataset"]["protected"] = ["sex"]
    spec["policy"] = {"max_levels": 2}
    assert client.post("/v1/audits", json=spec, headers=auth(token)).status_code == 202


def test_twelve_thousand_probes_are_refused_fast_by_name(
    client: TestClient, token: str, dataset_id: str, redis_db: redis.Redis, api_settings: Settings
) -> None:
    spec = spec_for(dataset_id, probes=[{"kind": "demographic"}] * 12_000)
    start = time.perf_counter()
    detail = _refused(client, token, spec, "probes")
    assert time.perf_counter() - start < 2.0
    assert detail == "probes: at most 100 probes in one spec, got 12000"
    assert _count(api_settings) == 0 and redis_db.llen("cpu") == 0


@pytest.mark.parametrize(
    ("spec", "queue"),
    [
        (
            {
                "name": "mlm",
                "model": {"kind": "huggingface", "path": "m", "task": "fill-mask"},
                "probes": [{"kind": "mlm-stereotype"}],
            },
            "gpu",
        ),
        (
            {
                "name": "weat",
                "model": {"kind": "huggingface", "path": "m", "task": "embedding"},
                "probes": [{"kind": "embedding-association"}],
            },
            "gpu",
        ),
        (
            {
                "name": "templates",
                "domain": "hiring",
                "model": {"kind": "huggingface", "path": "m", "task": "text-classification"},
                "probes": [{"kind": "counterfactual-text", "templates": "hiring"}],
            },
            "gpu",
        ),
    ],
)
def test_data_free_specs_are_accepted(
    client: TestClient,
    token: str,
    api_settings: Settings,
    redis_db: redis.Redis,
    spec: dict[str, Any],
    queue: str,
) -> None:
    (api_settings.data_path / "acme" / "m").mkdir(parents=True, exist_ok=True)
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 202, response.text
    assert redis_db.llen(queue) == 1


def test_a_cron_that_never_fires_is_422(
    client: TestClient, make_token: Callable[..., str], dataset_id: str
) -> None:
    response = client.post(
        "/v1/schedules",
        json={"name": "never", "cron": "0 0 30 2 *", "spec": spec_for(dataset_id)},
        headers=auth(make_token("admin")),
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "cron" and "never fires" in response.json()["detail"]


def test_a_probes_uploaded_train_file_is_the_projects_own(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    """lda-search's ``train_id`` names a dataset of the caller's project: another
    project's upload is 404 naming the field (as for ``dataset.id``), for audits and
    schedules; with ``train`` too it is 422."""
    mine = upload(client, make_token("submitter"), make_csv()).json()["id"]
    theirs = upload(client, make_token("submitter", project="globex"), make_csv()).json()["id"]

    def spec(**probe: Any) -> dict[str, Any]:
        lda = {"kind": "lda-search", "attribute": "sex", **probe}
        return spec_for(dataset_id, model={"kind": "sklearn", "path": "m.skops"}, probes=[lda])

    (api_settings.data_path / "acme" / "m.skops").write_bytes(b"placeholder")
    token = make_token("submitter")
    for bad in (theirs, "../globex/x.csv", "y" * 99):
        detail = _refused(client, token, spec(train_id=bad), "probes[0].train_id", status=404)
        assert detail.startswith("dataset ") and "not found" in detail
    admin = make_token("admin")
    body = {"name": "w", "cron": "0 3 * * 1", "spec": spec(train_id=theirs)}
    refused = client.post("/v1/schedules", json=body, headers=auth(admin))
    assert refused.status_code == 404 and refused.json()["field"] == "spec.probes[0].train_id"
    both = client.post("/v1/audits", json=spec(train_id=mine, train="t.csv"), headers=auth(token))
    assert both.status_code == 422 and "exactly one of them" in both.json()["detail"]
    assert both.json()["field"] == "probes[0].train"  # the key the check names, numbered
    assert _count(api_settings) == 0
    accepted = client.post("/v1/audits", json=spec(train_id=mine), headers=auth(token))
    assert accepted.status_code == 202, accepted.text
