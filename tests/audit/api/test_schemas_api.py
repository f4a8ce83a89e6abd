"""``GET /v1/schemas/results`` serves the results schema to any token, and only to tokens."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from audit.engine.results_model import results_json_schema


def test_results_schema_needs_a_token_of_any_role(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    assert client.get("/v1/schemas/results").status_code == 401
    for role in ("submitter", "reviewer", "admin"):
        token = make_token(role=role)
        answer = client.get("/v1/schemas/results", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, (role, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == results_json_schema()


def test_results_schema_route_is_in_the_openapi_document(client: TestClient) -> None:
    operation = client.app.openapi()["paths"]["/v1/schemas/results"]["get"]  # type: ignore[attr-defined]
    assert operation["tags"] == ["schemas"] and "security" in operation
    assert "401" in operation["responses"]
