"""Monitoring: schedule alert settings and baseline, ``alerts`` and ``alert_deliveries``.

Revision ID: monitoring_0004
Revises: client_0004
Create Date: 2026-11-30

``schedules.webhook_salt`` is a random value; the webhook secret is
HMAC-SHA256(BIASAUDIT_SECRET_KEY, salt), so the database alone does not hold it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "monitoring_0004"
down_revision: str | None = "client_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("alert", JSON, nullable=True))
        batch.add_column(sa.Column("webhook_salt", sa.String(64), nullable=True))
        batch.add_column(sa.Column("baseline_audit_id", sa.String(36), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("schedule_id", sa.String(36), nullable=False),
        sa.Column("audit_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivery", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name="fk_alerts_project_projects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_project_created_at", "alerts", ["project", "created_at"])
    op.create_index("ix_alerts_schedule_id", "alerts", ["schedule_id"])
    op.create_index("ix_alerts_audit_id", "alerts", ["audit_id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name="fk_alert_deliveries_alert_id_alerts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("baseline_audit_id")
        batch.drop_column("webhook_salt")
        batch.drop_column("alert")
