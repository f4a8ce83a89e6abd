"""Alerts: a delivery claim on ``alerts``; ``schedules.settle_seconds`` for late rows.

Revision ID: alerts_0005
Revises: monitoring_0004
Create Date: 2026-11-30

``alerts.claimed_until``: a worker delivering an alert holds it until then, so
two workers never post the same alert at once (a crashed worker's claim runs
out). ``schedules.settle_seconds``: a ``dataset.source`` run's window ends
that long before its due time, so rows that arrive late are still read.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0005"
down_revision: str | None = "monitoring_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(
            sa.Column("settle_seconds", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("settle_seconds")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("claimed_until")
