"""The API lists every spec error at once, with "did you mean" for misspelt keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.audit.api.helpers import auth, spec_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("submitter")


def test_every_spec_error_in_one_422(client: TestClient, token: str, dataset_id: str) -> None:
    spec = spec_for(dataset_id)
    spec["domian"] = "hiring"
    spec["policy"] = {"min_impact_ration": 0.8}
    spec["probes"] = [{"kind": "demographic", "intersectionl": True}]
    response = client.post("/v1/audits", json=spec, headers=auth(token))
    assert response.status_code == 422, response.text
    body = response.json()
    fields = [e["field"] for e in body["errors"]]
    assert {"domian", "policy.min_impact_ration", "probes[0].intersectionl"} <= set(fields)
    messages = " ".join(e["message"] for e in body["errors"])
    for hint in ("'domain'", "'min_impact_ratio'", "'intersectional'"):
        assert f"did you mean {hint}?" in messages
    assert "3 errors" in body["detail"]
