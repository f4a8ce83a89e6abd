"""The OpenAPI document declares what the server really does (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.api.app import create_app
from audit.settings import Settings

ERROR = {"$ref": "#/components/schemas/ErrorPublic"}


def _document() -> dict[str, Any]:
    return create_app(Settings(artifact_dir=Path("/nonexistent/biasaudit"))).openapi()


def test_bearer_scheme_on_every_route_but_health() -> None:
    doc = _document()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token from 'biasaudit keys create'",
    }
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            public = path in ("/healthz", "/readyz", "/metrics")
            assert ("security" in operation) is not public, (method, path)
            if not public:
                assert "401" in operation["responses"] and "503" in operation["responses"]


def test_errors_have_the_servers_body_and_are_json() -> None:
    doc = _document()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    error = doc["components"]["schemas"]["ErrorPublic"]
    assert set(error["properties"]) == {"detail", "field", "errors"}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert response["content"] == {"application/json": {"schema": ERROR}}
    report = doc["paths"]["/v1/audits/{audit_id}/report"]["get"]["responses"]
    assert set(report["200"]["content"]) == {"text/html", "application/pdf", "text/csv"}
    assert set(report["409"]["content"]) == {"application/json"}


def test_statuses_are_declared_where_they_happen() -> None:
    paths = _document()["paths"]

    def statuses(method: str, path: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"403", "404", "409", "413", "415", "422"} <= statuses("post", "/v1/audits")
    assert {"403", "413", "415", "422"} <= statuses("post", "/v1/datasets")
    assert {"403", "404", "409", "413", "415", "422"} <= statuses(
        "post", "/v1/audits/{audit_id}/reviews"
    )
    assert {"403", "404", "409", "422"} <= statuses("post", "/v1/schedules")
    assert "403" in statuses("get", "/v1/schedules")
    assert "403" not in statuses("get", "/v1/audits")  # every role may read
    assert {"404", "409"} <= statuses("get", "/v1/audits/{audit_id}/results")
    body = paths["/v1/schedules"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ScheduleCreate"}
