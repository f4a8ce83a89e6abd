"""Service configuration: one ``Settings`` object read from ``BIASAUDIT_*`` variables.

The defaults give the embedded mode (SQLite file under ``artifact_dir``, no
broker: audits run in-process), so ``biasaudit run`` works with no setup.
Production deployments set at least ``BIASAUDIT_DATABASE_URL``,
``BIASAUDIT_BROKER_URL`` and ``BIASAUDIT_SECRET_KEY``; the default secret is
refused outside ``development``.

``get_settings()`` is cached; tests that change the environment call
``get_settings.cache_clear()`` afterwards (the ``settings_env`` fixture in
``tests/conftest.py`` does this).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from audit.settings_service import ServiceSettings

DEFAULT_SECRET_KEY = "change-me"
DEFAULT_ARTIFACT_DIR = "~/.local/share/biasaudit"

# Asserted on by tests.
MSG_DEFAULT_SECRET = (
    "BIASAUDIT_SECRET_KEY: the {what} secret key is refused when "
    "BIASAUDIT_ENVIRONMENT={environment}; set BIASAUDIT_SECRET_KEY to a random string "
    '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"), '
    "or use BIASAUDIT_ENVIRONMENT=development for local work"
)
MSG_BAD_STORAGE_URL = (
    "BIASAUDIT_STORAGE_URL: {url!r} is not an object store address; use s3://BUCKET or "
    "s3://BUCKET/PREFIX (unset: the local folder BIASAUDIT_DATA_DIR)"
)


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); ValueError naming the setting."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(MSG_BAD_STORAGE_URL.format(url=url))
    return parts.netloc, parts.path.strip("/")


class Settings(ServiceSettings):
    """Everything configurable about the service; each field is ``BIASAUDIT_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="BIASAUDIT_", extra="ignore", validate_default=True, frozen=True
    )

    environment: Literal["development", "production", "test"] = Field(
        default="development",
        description="deployment kind; anything but development refuses the default secret",
    )
    artifact_dir: Path = Field(
        default=Path(DEFAULT_ARTIFACT_DIR),
        description="where reports, results and the default SQLite database are written",
    )
    data_dir: Path | None = Field(
        default=None,
        description="where uploaded datasets and models are stored (default: artifact_dir/data)",
    )
    storage_url: str | None = Field(
        default=None,
        description=(
            "object store for uploaded datasets and models, results and reports: "
            "s3://BUCKET/PREFIX (any S3-compatible service); unset: the local data_dir"
        ),
    )
    storage_endpoint_url: str | None = Field(
        default=None,
        description="endpoint of an S3-compatible service (MinIO, Ceph...); unset: AWS S3",
    )
    storage_public_endpoint_url: str | None = Field(
        default=None,
        description=(
            "the endpoint clients reach the store at, when it differs from the servers' "
            "(presigned upload URLs are signed for it); unset: storage_endpoint_url"
        ),
    )
    storage_region: str = Field(default="us-east-1", description="the object store's region")
    storage_access_key_id: str | None = Field(
        default=None, description="object store access key (unset: boto3's usual chain)"
    )
    storage_secret_access_key: SecretStr | None = Field(
        default=None, description="object store secret key (never logged)"
    )
    storage_upload_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="how long a presigned upload URL (POST /v1/datasets/uploads) stays valid",
    )
    range_block_bytes: int = Field(
        default=4 << 20, ge=1 << 16, description="most read-ahead of a shard's ranged GET"
    )
    cache_bytes: int | None = Field(
        default=None, ge=0, description="most bytes of stored-object copies kept per machine"
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL: sqlite:///PATH or postgresql://USER@HOST/DB "
            "(default: SQLite file artifact_dir/biasaudit.db)"
        ),
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker, e.g. redis://localhost:6379/0; unset = embedded mode",
    )
    result_backend_url: str | None = Field(
        default=None,
        description="Celery result backend (optional; audit state lives in the database)",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET_KEY),
        description="server secret (signing); must be set outside development",
    )
    allow_hub_models: bool = Field(
        default=False,
        description="allow model paths that name a Hugging Face Hub repo (network access)",
    )
    max_upload_bytes: int = Field(
        default=500 * 1024 * 1024, ge=1, description="largest dataset upload accepted, in bytes"
    )
    max_upload_rows: int = Field(
        default=10_000_000, ge=1, description="most rows accepted in an uploaded dataset"
    )
    max_decompressed_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        ge=1,
        description=(
            "largest decompressed size accepted for a compressed upload (.csv.gz, .zip, "
            "Parquet), in bytes: a larger one is refused as a decompression bomb"
        ),
    )
    max_columns: int = Field(
        default=2_000, ge=1, description="most columns accepted in an uploaded dataset"
    )
    max_model_upload_bytes: int = Field(
        default=4 * 1024 * 1024 * 1024,
        ge=1,
        description="largest model upload accepted (POST /v1/models: .skops, .zip, .tar), in bytes",
    )
    max_model_unpacked_bytes: int = Field(
        default=8 * 1024 * 1024 * 1024,
        ge=1,
        description=(
            "largest total size of the files in an uploaded model archive (or .skops file), "
            "in bytes: a larger one is refused as a decompression bomb"
        ),
    )
    max_model_files: int = Field(
        default=1_000, ge=1, description="most entries accepted in an uploaded model archive"
    )
    max_csv_header_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="longest header line accepted in an uploaded CSV, in bytes",
    )
    sniff_timeout: float = Field(
        default=120.0,
        gt=0,
        description="seconds the API may spend checking one upload (format, rows, levels)",
    )
    trusted_model_dir: Path | None = Field(
        default=None,
        description=(
            "operator-registered models: files under TRUSTED_MODEL_DIR/<project>/ may be "
            "pickle/joblib (a spec names one as model.path: registered:NAME); clients cannot "
            "write there. Unset: no registered models"
        ),
    )
    # ---- HTTP server (biasaudit serve); see docs/security.md
    max_request_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="request line and headers of one request, in bytes at most (431 beyond)",
    )
    max_request_headers: int = Field(
        default=100, ge=8, description="headers in one request at most (431 beyond)"
    )
    request_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a client may take to send a request's line and headers",
    )
    request_body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a client may pause while sending a request body",
    )
    shutdown_timeout: int = Field(
        default=30,
        ge=1,
        description="seconds 'serve' waits for requests in flight on SIGTERM, then cancels them",
    )
    min_group_size: int = Field(
        default=30,
        ge=1,
        description="groups smaller than this are reported as insufficient_data by default",
    )
    chunk_rows: int = Field(
        default=1_000_000, ge=1, description="rows per chunk when datasets are read in chunks"
    )
    source_pushdown: bool = Field(
        default=True,
        description="count-only audits of dataset.source run as one GROUP BY in the source "
        "database (only the count table travels); 0 pulls the rows",
    )
    chunk_bytes: int = Field(
        default=1 << 30,
        ge=1,
        description="count-only audits of files above this size are read in chunks "
        "(only counts are kept in memory)",
    )
    lease_seconds: int = Field(
        default=300,
        ge=1,
        description="how long a worker's claim on an audit lasts without a progress heartbeat",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="how many times an audit is tried before it is failed"
    )
    max_result_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024 - 1,
        description=(
            "largest results document stored, in bytes of JSON; a larger one fails the "
            "audit as an input error (no retry). At most PostgreSQL's jsonb limit (256 MiB)"
        ),
    )
    pdf_max_html_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=(
            "largest report (bytes of HTML) the API lays out as PDF on request; print layout "
            "takes about 3 s of CPU per 100 KiB of HTML (docs/performance.md). Larger "
            "reports: ?format=html or csv, or `biasaudit report ID --format pdf` (no limit)"
        ),
    )
    # ---- workers (Celery); see docs/service.md for why each value
    task_soft_time_limit: int = Field(
        default=3600, ge=1, description="seconds before a running audit is asked to stop (failed)"
    )
    task_time_limit: int = Field(
        default=3900, ge=1, description="seconds before a running audit's process is killed"
    )
    visibility_timeout: int = Field(
        default=7200,
        ge=1,
        description=(
            "seconds before Redis redelivers an unacknowledged task; must exceed "
            "task_time_limit (the longest audit)"
        ),
    )
    worker_max_tasks_per_child: int = Field(
        default=200, ge=1, description="a worker process is replaced after this many tasks"
    )
    reconcile_interval: float = Field(
        default=15.0, gt=0, description="seconds between reconciler runs (biasaudit beat)"
    )
    schedule_interval: float = Field(
        default=30.0, gt=0, description="seconds between checks for due scheduled audits"
    )
    requeue_after: float = Field(
        default=60.0,
        gt=0,
        description="an audit still queued after this many seconds is published again",
    )
    shard_threshold_rows: int = Field(
        default=2_000_000, ge=1, description="count-only audits above this many rows are sharded"
    )
    shard_threshold_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="count-only audits of files above this size are sharded",
    )
    shard_rows: int = Field(default=1_000_000, ge=1, description="rows per shard")
    max_shards: int = Field(
        default=64,
        ge=1,
        description="most shards one audit is split into (size it to the cpu worker processes "
        "that may run them at once, docs/scaling.md)",
    )
    shard_wait_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="how long the worker that split an audit keeps its lease while the shards "
        "wait in the queue and run; past it a lost shard lets the reconciler run it again",
    )
    ui_session_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="how long a dashboard sign-in (/ui/) lasts before it must sign in again",
    )
    behind_https_proxy: bool = Field(
        default=False,
        description=(
            "the API is served through a TLS-terminating proxy: dashboard cookies are always "
            "Secure (without it they are Secure when the request itself is https)"
        ),
    )

    @field_validator("artifact_dir", "data_dir", "trusted_model_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator(
        "database_url",
        "broker_url",
        "result_backend_url",
        "storage_url",
        "storage_endpoint_url",
        "storage_public_endpoint_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _defaults_and_secret(self) -> Settings:
        # frozen model: fill derived defaults through object.__setattr__.
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", self.artifact_dir / "data")
        if self.database_url is None:
            db_path = (self.artifact_dir / "biasaudit.db").resolve()
            object.__setattr__(self, "database_url", f"sqlite:///{db_path}")
        if self.storage_url is not None:
            parse_storage_url(self.storage_url)  # ValueError naming BIASAUDIT_STORAGE_URL
        secret = self.secret_key.get_secret_value().strip()
        if self.environment != "development" and secret in ("", DEFAULT_SECRET_KEY):
            what = "empty" if not secret else "default"
            raise ValueError(MSG_DEFAULT_SECRET.format(what=what, environment=self.environment))
        return self

    def source_url(self, name: str) -> str | None:
        """``BIASAUDIT_SOURCE_<NAME>_URL`` (read at use): a read-only database for
        ``dataset.source``, or None when the server has no such source."""
        return os.environ.get(f"BIASAUDIT_SOURCE_{name.upper()}_URL") or None

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: audits run in the calling process."""
        return self.broker_url is None

    @property
    def db_url(self) -> str:
        """``database_url`` with its default filled in (never None after validation)."""
        assert self.database_url is not None
        return self.database_url

    @property
    def data_path(self) -> Path:
        """``data_dir`` with its default filled in (never None after validation)."""
        assert self.data_dir is not None
        return self.data_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment.

    Call ``get_settings.cache_clear()`` after changing ``BIASAUDIT_*`` variables.
    """
    return Settings()
