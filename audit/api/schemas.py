"""Request and response bodies, in the FastAPI-template ladder (``XCreate / XPublic / XsPublic``).

Responses are built from database rows with ``model_validate(row)``
(``from_attributes``); they never carry secrets (no token, no hash). Dataset
responses carry no server path; a stored spec shows the absolute path of a
``dataset.path`` the caller gave (inside its own project folder).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.engine.spec import AuditSpec

AuditStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Verdict = Literal["pass", "fail"]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AuditCreate(AuditSpec):
    """An audit spec (docs/spec.md). ``dataset.id`` (from ``POST /v1/datasets``) replaces
    ``dataset.path``; a ``dataset.path`` must lie inside the project's data folder."""


class AuditQueued(BaseModel):
    """The answer to a submission: the audit's id and its status (``queued`` when new)."""

    id: str
    status: AuditStatus


ReviewState = Literal["awaiting review", "approved", "rejected"]


class AuditPublic(_Public):
    """An audit's state: status, progress (0..1) and the error of a failed audit."""

    id: str
    status: AuditStatus
    progress: float
    error: str | None = None
    name: str
    domain: str
    verdict: Verdict | None = None
    attempts: int
    cancel_requested: bool
    dataset_sha256: str | None = None
    model_sha256: str | None = None
    schedule_id: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    submitted_by: str | None = Field(default=None, description="the person who submitted it")
    review_state: ReviewState = Field(
        default="awaiting review", description="follows the latest review (latest wins)"
    )
    reviews: list[ReviewSummary] = Field(
        default_factory=list, description="sign-offs, oldest first (in GET /v1/audits/{id})"
    )


class ReviewSummary(BaseModel):
    """One sign-off as shown with an audit."""

    decision: Literal["approve", "reject"]
    reviewer: str | None = None
    comment: str | None = None
    created_at: datetime


class AuditsPublic(BaseModel):
    """One page of audits, newest first; ``count`` is the total matching the filters."""

    data: list[AuditPublic]
    count: int
    limit: int
    offset: int


class DatasetPublic(_Public):
    """A stored dataset: content hash, row count and column names (no server path)."""

    id: str
    sha256: str
    rows: int
    columns: list[str]
    column_levels: dict[str, int] | None = Field(
        default=None,
        description="distinct values per column, counted up to 1,000 (1,001: more than that)",
    )
    size_bytes: int
    filename: str | None = None
    created_at: datetime


class Usage(BaseModel):
    """How the project's audits used a stored item (in the listings)."""

    audits: int = Field(default=0, description="audits of the project that named it")
    last_used_at: datetime | None = Field(
        default=None, description="when the latest of them was submitted (null: never)"
    )


class DatasetItem(DatasetPublic):
    """A dataset in ``GET /v1/datasets``: what ``GET /v1/datasets/{id}`` shows, and its use.
    With ``deleted=true``, erased datasets: their bytes are gone, sha256 stays."""

    usage: Usage = Field(default_factory=Usage)
    deleted_at: datetime | None = None
    deleted_by: str | None = None


class DatasetsPublic(BaseModel):
    """One page of a project's datasets, newest first; ``count`` is the total."""

    data: list[DatasetItem]
    count: int
    limit: int
    offset: int


class DeletedPublic(BaseModel):
    """The 410 body of a deleted dataset or model: its fingerprint, when and by whom."""

    detail: str
    field: str | None = None
    id: str
    sha256: str
    deleted_at: datetime
    deleted_by: str | None = None


class InUsePublic(BaseModel):
    """The 409 body of a refused deletion: what still needs the item."""

    detail: str
    field: str | None = None
    audits: list[str] = Field(description="queued or running audits that name it")
    schedules: list[str] = Field(description="enabled schedules whose spec names it")


class UploadCreate(BaseModel):
    """A direct upload to the object store: what the client is about to send."""

    model_config = ConfigDict(extra="forbid")

    size_bytes: int | None = Field(
        default=None, ge=0, description="the file's size; refused at once above the limit"
    )


class UploadPost(BaseModel):
    """A presigned form upload: POST ``fields`` then ``file`` (multipart) to ``url``."""

    url: str
    fields: dict[str, str]


class UploadPublic(BaseModel):
    """Where to PUT the file, and where to confirm it afterwards."""

    id: str
    method: Literal["PUT"] = "PUT"
    url: str = Field(description="presigned URL: PUT the file's bytes here, no auth header")
    expires_at: datetime
    max_bytes: int
    complete_url: str = Field(description="POST here with the file's sha256 once it is PUT")
    post: UploadPost | None = Field(
        default=None,
        description="or send the file as a form POST: the store refuses a body over the limit",
    )


class UploadComplete(BaseModel):
    """The client's statement of what it uploaded; the server checks it."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256 of the file")
    filename: str | None = Field(default=None, max_length=255)


class ModelPublic(_Public):
    """A stored model: its kind and fingerprint (no server path). A spec names it as
    ``model: {kind: ..., id: ...}``."""

    id: str
    kind: str = Field(description="sklearn (a .skops file) or huggingface (a model folder)")
    sha256: str = Field(
        description="the model's fingerprint, as results.json model.sha256 shows it"
    )
    size_bytes: int | None = None
    filename: str | None = None
    files: int | None = Field(default=None, description="files in the model (1 for .skops)")
    created_at: datetime


class ModelItem(ModelPublic):
    """A model in ``GET /v1/models``, with its use (and, when listed deleted, the erasure)."""

    usage: Usage = Field(default_factory=Usage)
    deleted_at: datetime | None = None
    deleted_by: str | None = None


class ModelsPublic(BaseModel):
    """One page of a project's models, newest first; ``count`` is the total."""

    data: list[ModelItem]
    count: int
    limit: int
    offset: int


class ReviewCreate(BaseModel):
    """A reviewer's sign-off on a succeeded audit."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=10_000)


class ReviewPublic(_Public):
    id: int
    audit_id: str
    decision: Literal["approve", "reject"]
    comment: str | None = None
    reviewer: str | None = None
    created_at: datetime


class ReviewsPublic(BaseModel):
    data: list[ReviewPublic]
    count: int


class AlertConfig(BaseModel):
    """A schedule's alert target: a webhook on the server's allowlist."""

    model_config = ConfigDict(extra="forbid")

    webhook: str = Field(min_length=1, max_length=2000, examples=["https://hooks.example.com/x"])


class ScheduleCreate(BaseModel):
    """A recurring audit: ``spec`` is submitted each time the cron expression (UTC) fires."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    cron: str = Field(
        min_length=1,
        max_length=100,
        description="five fields 'minute hour day-of-month month day-of-week', UTC",
        examples=["0 3 * * 1"],
    )
    spec: dict[str, Any] = Field(description="an audit spec, as for POST /v1/audits")
    enabled: bool = True
    alert: AlertConfig | None = Field(
        default=None, description="where alerts of this schedule are posted (docs/monitoring.md)"
    )
    baseline_audit_id: str | None = Field(
        default=None,
        max_length=36,
        description="the run each run is also compared with (default: the first run)",
    )
    settle_seconds: int = Field(
        default=0,
        ge=0,
        le=30 * 86400,
        description=(
            "dataset.source windows end this many seconds before the due time, so rows "
            "that reach the source late are still read (docs/monitoring.md)"
        ),
    )


class ScheduleUpdate(BaseModel):
    """``PATCH /v1/schedules/{id}``: the fields given are changed (``null`` clears)."""

    model_config = ConfigDict(extra="forbid")

    alert: AlertConfig | None = None
    baseline_audit_id: str | None = Field(default=None, max_length=36)
    settle_seconds: int = Field(default=0, ge=0, le=30 * 86400)


class SchedulePublic(_Public):
    id: str
    name: str
    cron: str
    spec: dict[str, Any]
    enabled: bool
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_audit_id: str | None = None
    created_at: datetime
    alert: dict[str, Any] | None = None
    baseline_audit_id: str | None = None
    settle_seconds: int = 0
    webhook_secret: str | None = Field(
        default=None,
        description="the HMAC secret of the webhook: returned only when it is set, never again",
    )


class AlertPublic(_Public):
    id: str
    schedule_id: str
    audit_id: str
    kind: str
    details: dict[str, Any]
    created_at: datetime
    delivery: str | None = None
    attempts: int


class AlertsPublic(BaseModel):
    data: list[AlertPublic]
    count: int


class SchedulesPublic(BaseModel):
    data: list[SchedulePublic]
    count: int


class FieldError(BaseModel):
    """One invalid field of a request: its path and what is wrong with it."""

    field: str
    message: str


class ErrorPublic(BaseModel):
    """Every error response: what went wrong, and the field at fault when there is one.

    Spec and query errors add ``errors``, every invalid field; a health check
    that fails adds ``checks``.
    """

    model_config = ConfigDict(extra="allow")

    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None


def json_request_body(schema: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body ``#/components/schemas/<schema>``
    (for routes that read their body themselves, after the token check)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    }


class ArtifactPublic(BaseModel):
    """A file the audit produced (e.g. lda-search's best alternative model)."""

    name: str
    size_bytes: int
    sha256: str
    media_type: str
    url: str = Field(description="where to download it (GET, same token)")


class ArtifactsPublic(BaseModel):
    data: list[ArtifactPublic]
    count: int
