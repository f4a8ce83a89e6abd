"""Database tables (SQLAlchemy 2 typed declarative), shared by SQLite and PostgreSQL.

Every row belongs to a ``project`` (the tenant); queries from the API always
filter on it. Timestamps are timezone-aware UTC on both backends (SQLite
stores naive UTC text, see ``UTCDateTime``). JSON columns are ``JSONB`` on
PostgreSQL and JSON text on SQLite.

The schema is created by the Alembic migrations in ``audit/migrations``;
``tests/audit/test_storage.py`` checks that they match these models.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

AUDIT_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ROLES = ("submitter", "reviewer", "admin")
DECISIONS = ("approve", "reject")
VERDICTS = ("pass", "fail")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only clock storage uses)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random UUID4 as text: ids of audits, datasets, models and schedules."""
    return str(uuid.uuid4())


def plausible_id(value: str) -> bool:
    """False for a string no row id can be (longer than the column, or with control
    characters such as NUL, which PostgreSQL refuses): answer 404 without a query."""
    return 0 < len(value) <= 36 and value.isprintable()


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are
    converted to UTC and stored naive (which keeps text comparison correct)
    and read back with ``tzinfo=UTC``. Naive inputs are refused: they are
    ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def _project_fk() -> Any:
    return ForeignKey("projects.name", ondelete="CASCADE")


class Project(Base):
    """A tenant: tokens, datasets, audits and schedules belong to exactly one."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; ``prefix`` identifies it in listings."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_in_list("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(100), _project_fk(), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class Dataset(Base):
    """An uploaded dataset file (stored under ``data_dir``), identified by a UUID."""

    __tablename__ = "datasets"
    __table_args__ = (Index(None, "project", "sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), _project_fk())
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[Any] = mapped_column(JSONType)
    # distinct values per column, counted at upload up to a bound (bound + 1: "more")
    column_levels: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # the object store's ETag of the registered version: ranged reads are pinned to it
    etag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()  # erased: bytes gone, row kept
    deleted_by: Mapped[str | None] = mapped_column(String(200))


class ModelArtifact(Base):
    """An uploaded or registered model (table ``models``), fingerprinted by ``sha256``."""

    __tablename__ = "models"
    __table_args__ = (Index(None, "project", "sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), _project_fk())
    kind: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    files: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()
    deleted_by: Mapped[str | None] = mapped_column(String(200))


class Schedule(Base):
    """A recurring compliance audit: ``spec`` is submitted whenever ``cron`` fires.

    ``last_audit_id`` is a plain column (no foreign key) so that ``audits`` and
    ``schedules`` do not reference each other in a cycle.
    """

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("project", "name"), Index(None, "enabled", "next_run_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), _project_fk())
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column()
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column()
    last_run_at: Mapped[datetime | None] = mapped_column()
    last_audit_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # monitoring: {"webhook": URL} or None; the webhook secret is derived (see alerts.py)
    alert: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    webhook_salt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    baseline_audit_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # dataset.source windows end this many seconds before the due time (late rows)
    settle_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Audit(Base):
    """One audit job: its spec, lifecycle (status, lease, attempts) and verdict."""

    __tablename__ = "audits"
    __table_args__ = (
        CheckConstraint(_in_list("status", AUDIT_STATUSES), name="status"),
        CheckConstraint(f"verdict IS NULL OR {_in_list('verdict', VERDICTS)}", name="verdict"),
        UniqueConstraint("project", "idempotency_key"),
        Index(None, "project", "status"),
        Index(None, "project", "created_at"),
        Index(None, "status", "lease_until"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(100), _project_fk())
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column()
    spec_sha256: Mapped[str] = mapped_column(String(64))
    dataset_sha256: Mapped[str | None] = mapped_column(String(64))
    model_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    verdict: Mapped[str | None] = mapped_column(String(8))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    schedule_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("schedules.id", ondelete="SET NULL"), index=True
    )
    token_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    # the person (token name) who submitted it; reviews by the same person are refused
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class Result(Base):
    """The results.json document of a finished audit; at most one per audit."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("audits.id", ondelete="CASCADE"), unique=True
    )
    document: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Report(Base):
    """A report rendered once when the results were stored (one row per format).

    The content lives in ``report_chunks`` (gzip stream cut into pieces of at
    most ``REPORT_CHUNK_BYTES``), so a reader streams it piece by piece and a
    large report never sits whole in the API's memory.
    """

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("audit_id", "format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("audits.id", ondelete="CASCADE"), index=True
    )
    format: Mapped[str] = mapped_column(String(255))  # html, pdf, or file:<name>
    media_type: Mapped[str] = mapped_column(String(100))
    encoding: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportChunk(Base):
    """One piece of a stored report's (compressed) bytes, in order of ``seq``."""

    __tablename__ = "report_chunks"
    __table_args__ = (PrimaryKeyConstraint("report_id", "seq"),)

    report_id: Mapped[int] = mapped_column(Integer, ForeignKey("reports.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FindingRow(Base):
    """One policy check of a finished audit (a row of results.json ``findings``)."""

    __tablename__ = "findings"
    __table_args__ = (Index(None, "metric", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("audits.id", ondelete="CASCADE"), index=True
    )
    probe: Mapped[str] = mapped_column(String(64))
    attribute: Mapped[str | None] = mapped_column(String(255))
    group: Mapped[str | None] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(32))
    p_value: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[str | None] = mapped_column(String(8))


class Review(Base):
    """A reviewer's sign-off (approve or reject) on an audit."""

    __tablename__ = "reviews"
    __table_args__ = (CheckConstraint(_in_list("decision", DECISIONS), name="decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("audits.id", ondelete="CASCADE"), index=True
    )
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    token_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    reviewer: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """One entry of the append-only, hash-chained event log (see ``audit.storage.events``).

    No foreign keys: the log outlives what it names, and nothing may cascade into it.
    A trigger refuses ``UPDATE`` and ``DELETE`` on both backends.
    """

    __tablename__ = "events"
    __table_args__ = (Index(None, "project", "seq"), Index(None, "audit_id"))

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    project: Mapped[str | None] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(100))
    audit_id: Mapped[str | None] = mapped_column(String(36))
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    prev_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))


class EventHead(Base):
    """The one-row head of the event chain: the last ``seq`` and its hash.

    Appenders update this row first, which serialises them (a row lock on
    PostgreSQL, the write lock on SQLite).
    """

    __tablename__ = "event_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class UiSession(Base):
    """A dashboard sign-in (``/ui/``): only the SHA-256 of the session id is stored.

    The session acts with its token's project and role; revoking the token
    ends the session too (every request checks the token is still live).
    """

    __tablename__ = "ui_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


from audit.storage.alert_models import Alert, AlertDelivery  # noqa: E402

__all__ = ["Alert", "AlertDelivery"]
