"""``AuditResults``: the typed model of the whole results.json document, and its JSON Schema.

The engine assembles results.json as plain JSON (:func:`audit.engine.outputs.assemble_results`);
this model describes it. Each ``probes`` entry is validated by the typed model its probe
declares (:mod:`probes.result_models`; permissive for a kind no installed probe
registers), so ``AuditResults.model_validate(doc)`` checks every group and summary.
Every model accepts keys it does not declare, as later versions add keys beside
today's (docs/results.md).

``python -m audit.engine.results_model > docs/results.schema.json`` writes the JSON
Schema (a test checks that the file is current); the API serves the same document at
``GET /v1/schemas/results``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, field_validator

from probes.base import Status, get_probe, list_probes
from probes.result_models import CI, ResultEntry, ResultModel, entry_model, typed_entry


class AuditInfo(ResultModel):
    """``audit``: which audit, of which spec, when (UTC ISO 8601)."""

    id: str
    name: str
    domain: str | None = None
    spec_sha256: str
    started_at: str
    finished_at: str


class ModelInfo(ResultModel):
    """``model``: the audited model's kind and fingerprint."""

    kind: str
    sha256: str | None = None
    task: str | None = None
    precision: str | None = None
    prediction_column: str | None = None


class DatasetInfo(ResultModel):
    """``dataset``: the audited file's hash and size."""

    sha256: str | None = None
    rows: int
    path: str | None = None
    chunked: bool | None = None
    columnar: bool | None = Field(
        default=None,
        description="the rows were read from the upload's columnar (Parquet) copy of the "
        "CSV file; sha256 is the original file's",
    )


class FindingResult(ResultModel):
    """One item of ``findings``: one policy check on one group and metric."""

    probe: str
    attribute: str
    group: str
    metric: str
    value: float | None
    threshold: float
    status: Status
    p_value: float | None = None
    ci: CI | None = None
    direction: Literal["min", "max"] = "min"
    note: str | None = None


class Manifest(ResultModel):
    """``manifest``: what it takes to reproduce the audit."""

    package: str
    version: str | None = None
    git_commit: str | None = None
    python: str
    platform: str
    versions: dict[str, str | None]
    metric_definitions: dict[str, str]
    seed: int
    thresholds: dict[str, Any]
    min_group_size: int
    favorable_label: Any = None
    unknown_label: str
    unknown_counts: dict[str, int]
    groups: dict[str, list[str]]
    excluded_groups: dict[str, list[dict[str, Any]]]
    probes: list[dict[str, Any]]
    spec: dict[str, Any]
    precision: dict[str, Any] | None = None


class AuditResults(ResultModel):
    """The results.json document (``schema_version`` 1)."""

    schema_version: Literal[1]
    audit: AuditInfo
    model: ModelInfo
    dataset: DatasetInfo
    probes: list[SerializeAsAny[ResultEntry]] = Field(
        description="one entry per probe and attribute; each validated by its probe's model"
    )
    findings: list[FindingResult]
    verdict: Literal["pass", "fail"]
    manifest: Manifest

    @field_validator("probes", mode="before")
    @classmethod
    def _typed_entries(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [typed_entry(e) if isinstance(e, dict) else e for e in value]


def results_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of results.json: ``AuditResults`` with, for each probe
    kind registered, its typed entry model applied to the entries of that kind."""
    schema = AuditResults.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    rules: list[dict[str, Any]] = []
    for name in list_probes():
        sub = entry_model(get_probe(name)).model_json_schema(ref_template="#/$defs/{model}")
        for key, body in {**sub.pop("$defs", {}), sub["title"]: sub}.items():
            if defs.setdefault(key, body) != body:
                raise ValueError(f"results schema: two different models are named {key!r}")
        rules.append(
            {
                "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                "then": {"$ref": f"#/$defs/{sub['title']}"},
            }
        )
    items = schema["properties"]["probes"]["items"]
    schema["properties"]["probes"]["items"] = {**items, "allOf": rules}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }


def render() -> str:
    """docs/results.schema.json: the schema as indented JSON."""
    return json.dumps(results_json_schema(), indent=2) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
