"""Property-based fuzzing of the running API from its own OpenAPI document (schemathesis).

A real ``biasaudit serve`` (uvicorn, PostgreSQL database of its own, Redis)
answers every operation of ``/openapi.json`` with examples generated from the
document, once with an admin and once with a submitter token. Path ids are
real (an uploaded dataset and model, a finished audit, a schedule), and a generated
spec's ``dataset.id`` is replaced by the real one, so the fuzzer reaches the
success paths, not only 404s. Every answer must be declared for its operation with
the declared media type, headers and body schema, routes must refuse a request
without the token, and no answer may be a 500. The audit's PDF is read once before
the fuzzing (laid out then, streamed as stored after), and reviews are posted to an
audit of their own (a review drops the stored reports).

The schema is loaded at module level (``schemathesis.pytest.from_fixture``
does not work with pytest 9); examples per operation are bounded
(:data:`EXAMPLES`) so the whole file runs in about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from audit.api.app import create_app
from audit.settings import Settings
from audit.storage import repo, session_scope
from tests.audit.api.helpers import finish_audit, make_csv, spec_for
from tests.conftest import redis_test_url
from tests.integration.conftest import Stack, private_database, service_env

pytestmark = [pytest.mark.postgres, pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 10
REDIS_URL = redis_test_url(13)
PATH_IDS = ("dataset_id", "audit_id", "schedule_id", "model_id")

schema = schemathesis.openapi.from_dict(
    create_app(Settings(artifact_dir=Path("/nonexistent/biasaudit"))).openapi()
)
schema.config.generation.update(max_examples=EXAMPLES, modes=[GenerationMode.POSITIVE])


@dataclass(frozen=True)
class Live:
    base: str
    tokens: dict[str, str]
    ids: dict[str, str]


def _skops() -> bytes:
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    return bytes(sio.dumps(DummyClassifier().fit([[0], [1]], [0, 1])))


def _ids(base: str, tokens: dict[str, str], database_url: str) -> dict[str, str]:
    submitter = {"Authorization": f"Bearer {tokens['submitter']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    with httpx.Client(base_url=base, timeout=30) as client:
        upload = client.post(
            "/v1/datasets", files={"file": ("d.csv", make_csv(), "text/csv")}, headers=submitter
        )
        assert upload.status_code == 201, upload.text
        dataset_id = upload.json()["id"]
        audit = client.post("/v1/audits", json=spec_for(dataset_id), headers=submitter)
        assert audit.status_code == 202, audit.text
        finish_audit(database_url, audit.json()["id"])  # results and report exist
        # its PDF is laid out on the first read (seconds of CPU; under load more than the
        # fuzzer's 10 s per request) and stored: the fuzzed reads stream the stored one
        pdf = client.get(
            f"/v1/audits/{audit.json()['id']}/report",
            params={"format": "pdf"},
            headers=submitter,
            timeout=300,
        )
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-"), pdf.text[:500]
        # reviews are fuzzed on an audit of their own: a review drops the stored reports
        reviewed = client.post("/v1/audits", json=spec_for(dataset_id), headers=submitter)
        assert reviewed.status_code == 202, reviewed.text
        finish_audit(database_url, reviewed.json()["id"])
        schedule = client.post(
            "/v1/schedules",
            json={"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)},
            headers=admin,
        )
        assert schedule.status_code == 201, schedule.text
        model = client.post(
            "/v1/models",
            files={"file": ("m.skops", _skops(), "application/octet-stream")},
            headers=submitter,
        )
        assert model.status_code == 201, model.text
    return {
        "model_id": model.json()["id"],
        "dataset_id": dataset_id,
        "audit_id": audit.json()["id"],
        "reviewed_audit_id": reviewed.json()["id"],
        "schedule_id": schedule.json()["id"],
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base_dir = tmp_path_factory.mktemp("fuzz")
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    with private_database() as url:
        env = service_env(database_url=url, broker_url=REDIS_URL, base=base_dir)
        stack = Stack(env, base_dir / "logs")
        try:
            _, base = stack.api("fuzz-api")
            with session_scope(url) as session:
                tokens = {
                    role: repo.create_token(session=session, project="acme", role=role)[0]
                    for role in ("admin", "submitter")
                }
            yield Live(base, tokens, _ids(base, tokens, url))
        finally:
            stack.stop_all()
            conn.flushdb()
            conn.close()


def _with_real_ids(case: Any, live: Live) -> None:
    for name in PATH_IDS:
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = live.ids[name]
    if case.method.upper() == "POST" and case.path.endswith("/reviews"):
        case.path_parameters["audit_id"] = live.ids["reviewed_audit_id"]
    body = case.body
    if isinstance(body, dict):
        inner = body.get("spec")
        spec: dict[str, Any] = inner if isinstance(inner, dict) else body
        dataset = spec.get("dataset")
        if isinstance(dataset, dict) and "id" in dataset:
            dataset["id"] = live.ids["dataset_id"]


@pytest.mark.parametrize("role", ["admin", "submitter"])
@schema.parametrize()
@settings(
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_as_documented(case: Any, role: str, live: Live) -> None:
    _with_real_ids(case, live)
    case.call_and_validate(
        base_url=live.base,
        headers={"Authorization": f"Bearer {live.tokens[role]}"},
        # A schema-valid request may still be refused (422/415): the content decides too
        # (a file must be CSV or Parquet, a model file must exist). Every other check runs.
        excluded_checks=[positive_data_acceptance],
    )
