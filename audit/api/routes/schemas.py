"""JSON Schemas of the documents the API serves: ``GET /v1/schemas/results``.

The schema of results.json is generated from the typed result models
(:mod:`audit.engine.results_model`), including the entry models of every probe the
server has installed (third-party probes too). Any valid token may read it, like the
other read routes; it holds no tenant data.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from audit.api.deps import ReaderToken
from audit.engine.results_model import results_json_schema

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])


@cache
def _results_schema() -> dict[str, Any]:
    return results_json_schema()


@router.get(
    "/results",
    summary="JSON Schema (2020-12) of the results.json document",
    response_description="the schema; probe entries are checked by their kind's model",
)
def results_schema(token: ReaderToken) -> dict[str, Any]:
    return _results_schema()
