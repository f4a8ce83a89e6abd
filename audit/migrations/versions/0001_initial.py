"""Initial schema: projects, tokens, datasets, models, schedules, audits, results,
findings, reviews.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Migrations are frozen copies of the schema: they use plain SQLAlchemy types,
never the application's model classes, so later model edits cannot change
what an old migration does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _project(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("project", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name=f"fk_{table}_project_projects", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    _accounts()
    _uploads()
    _schedules()
    _audits()
    _audit_outcomes()


def _accounts() -> None:
    """Projects (the tenants) and their API tokens."""
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_project("api_tokens"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        _ts("created_at", nullable=False),
        _ts("revoked_at"),
        _ts("last_used_at"),
        sa.CheckConstraint("role IN ('submitter', 'reviewer', 'admin')", name="ck_api_tokens_role"),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_project", "api_tokens", ["project"])


def _uploads() -> None:
    """Datasets and models stored by the API, addressed by project and sha256."""
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), nullable=False),
        *_project("datasets"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("columns", JSON, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_project_sha256", "datasets", ["project", "sha256"])

    op.create_table(
        "models",
        sa.Column("id", sa.String(36), nullable=False),
        *_project("models"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
    )
    op.create_index("ix_models_project_sha256", "models", ["project", "sha256"])


def _schedules() -> None:
    """Recurring audits: a cron expression and the spec to submit."""
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(36), nullable=False),
        *_project("schedules"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("next_run_at"),
        _ts("last_run_at"),
        sa.Column("last_audit_id", sa.String(36), nullable=True),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("project", "name", name="uq_schedules_project_name"),
    )
    op.create_index("ix_schedules_enabled_next_run_at", "schedules", ["enabled", "next_run_at"])


def _audits() -> None:
    """The audit jobs: spec, status and lease, verdict, submitter and schedule."""
    op.create_table(
        "audits",
        sa.Column("id", sa.String(36), nullable=False),
        *_project("audits"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("dataset_sha256", sa.String(64), nullable=True),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("lease_until"),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("schedule_id", sa.String(36), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_audits_status",
        ),
        sa.CheckConstraint(
            "verdict IS NULL OR verdict IN ('pass', 'fail')", name="ck_audits_verdict"
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name="fk_audits_schedule_id_schedules",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name="fk_audits_token_id_api_tokens",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audits"),
        sa.UniqueConstraint("project", "idempotency_key", name="uq_audits_project_idempotency_key"),
    )
    op.create_index("ix_audits_model_sha256", "audits", ["model_sha256"])
    op.create_index("ix_audits_project_created_at", "audits", ["project", "created_at"])
    op.create_index("ix_audits_project_status", "audits", ["project", "status"])
    op.create_index("ix_audits_schedule_id", "audits", ["schedule_id"])
    op.create_index("ix_audits_status_lease_until", "audits", ["status", "lease_until"])


def _audit_outcomes() -> None:
    """What an audit produced and what was decided about it: results, findings, reviews."""
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("audit_id", sa.String(36), nullable=False),
        sa.Column("document", JSON, nullable=False),
        _ts("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["audits.id"], name="fk_results_audit_id_audits", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.UniqueConstraint("audit_id", name="uq_results_audit_id"),
    )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("audit_id", sa.String(36), nullable=False),
        sa.Column("probe", sa.String(64), nullable=False),
        sa.Column("attribute", sa.String(255), nullable=True),
        sa.Column("group", sa.String(255), nullable=True),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["audits.id"], name="fk_findings_audit_id_audits", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
    )
    op.create_index("ix_findings_audit_id", "findings", ["audit_id"])
    op.create_index("ix_findings_metric_status", "findings", ["metric", "status"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("audit_id", sa.String(36), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(200), nullable=True),
        _ts("created_at", nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_reviews_decision"),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["audits.id"], name="fk_reviews_audit_id_audits", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name="fk_reviews_token_id_api_tokens",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
    )
    op.create_index("ix_reviews_audit_id", "reviews", ["audit_id"])


def downgrade() -> None:
    for table in (
        "reviews",
        "findings",
        "results",
        "audits",
        "schedules",
        "models",
        "datasets",
        "api_tokens",
        "projects",
    ):
        op.drop_table(table)
