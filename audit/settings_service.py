"""Settings of the service's periodic work (``biasaudit beat``): webhooks and retention.

A base class of :class:`audit.settings.Settings` (same ``BIASAUDIT_`` prefix; read it
from there), kept apart so that each module stays small enough to read at once.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Webhook delivery and data retention (each field is ``BIASAUDIT_<FIELD>``)."""

    model_config = SettingsConfigDict(
        env_prefix="BIASAUDIT_", extra="ignore", validate_default=True, frozen=True
    )

    webhook_allowlist: str = Field(
        default="",
        description=(
            "comma-separated hosts schedule webhooks may post to: an exact host or "
            "*.suffix; empty = no webhooks. Hosts resolving to private or loopback "
            "addresses are refused unless listed exactly"
        ),
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="seconds one webhook delivery may take"
    )
    webhook_max_attempts: int = Field(
        default=6, ge=1, description="delivery attempts per alert before it is marked failed"
    )
    webhook_backoff: float = Field(
        default=30.0,
        gt=0,
        description="seconds before the first retry of a failed webhook; doubled each time",
    )

    dataset_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=100 * 365,
        description=(
            "delete uploaded datasets (bytes everywhere; the row keeps sha256 and deleted_at) "
            "that no audit has used for this many days and no enabled schedule names; "
            "unset: kept until DELETE /v1/datasets/{id}"
        ),
    )
    model_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=100 * 365,
        description="the same for uploaded models; unset: kept until DELETE /v1/models/{id}",
    )
    retention_interval: float = Field(
        default=3600.0,
        gt=0,
        description="seconds between retention runs (biasaudit beat), when a retention is set",
    )
