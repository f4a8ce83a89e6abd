"""The OpenAPI document, made to match what the server really answers.

FastAPI's generated schema knows the routes' parameters and success bodies.
:func:`build_openapi` adds what it cannot see:

- the bearer security scheme, required on every route but the health routes;
- the bodies that routes read themselves (``AuditCreate``, ``ReviewCreate``,
  ``ScheduleCreate``), with the spec's own JSON Schema;
- every error status where it can happen (401 on every authenticated route,
  403 where a role is refused, 404 for path ids, 409, 413, 415, 422, 503),
  each with the server's real error body :class:`ErrorPublic` as JSON (also on
  routes whose success is HTML or PDF), never FastAPI's default 422 shape.

``tests/audit/api/test_openapi_fuzz.py`` checks the document against the
running server with schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from audit.api.schemas import (
    AuditCreate,
    ErrorPublic,
    ReviewCreate,
    ScheduleCreate,
    ScheduleUpdate,
    UploadComplete,
    UploadCreate,
)

SCHEME = "bearerAuth"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REF = "#/components/schemas/{model}"
DESCRIPTIONS = {
    "401": "missing, malformed, unknown or revoked token",
    "403": "the token's role may not use this route",
    "404": "not found in the token's project",
    "409": "conflict with the object's state",
    "413": "body larger than the limit",
    "415": "body of an unsupported media type",
    "422": "invalid request; 'field' names the part at fault, 'errors' lists every field",
    "503": "database unavailable; nothing was changed (see Retry-After)",
}
# Routes that read a body: (method, path) -> statuses the body alone can cause.
BODY_ROUTES = {
    ("post", "/v1/audits"): ("413", "415", "422"),
    ("post", "/v1/datasets"): ("413", "415", "422"),
    ("post", "/v1/audits/{audit_id}/reviews"): ("413", "415", "422"),
    ("post", "/v1/schedules"): ("413", "415", "422"),
    ("patch", "/v1/schedules/{schedule_id}"): ("413", "415", "422"),
}
NOT_FOUND_WITHOUT_PATH_ID = frozenset({("post", "/v1/audits"), ("post", "/v1/schedules")})


def _roles_of(route: APIRoute) -> tuple[str, ...] | None:
    """The roles a route is limited to (its ``require_roles`` dependency), or None."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            return tuple(roles)
        stack.extend(dep.dependencies)
    return None


def _components(schema: dict[str, Any]) -> dict[str, Any]:
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (
        AuditCreate,
        ReviewCreate,
        ScheduleCreate,
        ScheduleUpdate,
        UploadCreate,
        UploadComplete,
        ErrorPublic,
    ):
        definition = model.model_json_schema(ref_template=REF)
        for name, sub in definition.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components[model.__name__] = definition
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return components


def _error(responses: dict[str, Any], status: str) -> None:
    entry = responses.setdefault(status, {})
    entry.setdefault("description", DESCRIPTIONS.get(status, "error"))
    if entry["description"] == "Validation Error":
        entry["description"] = DESCRIPTIONS["422"]
    entry["content"] = {"application/json": {"schema": {"$ref": REF.format(model="ErrorPublic")}}}


def _statuses(method: str, path: str, route: APIRoute, declared: dict[str, Any]) -> set[str]:
    statuses = {s for s in declared if s[0] in "45"}
    if path in PUBLIC_PATHS:
        return statuses
    statuses |= {"401", "503"}
    if _roles_of(route) is not None:
        statuses.add("403")
    if "{" in path or (method, path) in NOT_FOUND_WITHOUT_PATH_ID:
        statuses.add("404")
    statuses |= set(BODY_ROUTES.get((method, path), ()))
    if route.dependant.query_params:
        statuses.add("422")
    return statuses


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    _components(schema)
    schema["components"]["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "an API token from 'biasaudit keys create'",
        }
    }
    routes = {
        (method.lower(), str(ctx.path_format)): ctx.original_route
        for ctx in iter_route_contexts(app.routes)
        if isinstance(ctx.original_route, APIRoute)
        for method in ctx.methods or ()
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            route = routes.get((method, path))
            if route is None:
                continue
            if path not in PUBLIC_PATHS:
                operation["security"] = [{SCHEME: []}]
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(method, path, route, responses)):
                _error(responses, status)
    app.openapi_schema = schema
    return schema
