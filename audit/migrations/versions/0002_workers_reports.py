"""Reports rendered once when results are stored: ``reports`` and ``report_chunks``.

Revision ID: workers_0002
Revises: 0001
Create Date: 2026-11-30

The API streams a stored report chunk by chunk instead of rendering the
results on every request (a large report read three times at once must not
hold three renderings in memory). Audits stored before this revision have no
stored report; the API renders theirs once, on first request, and stores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "workers_0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("audit_id", sa.String(36), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["audits.id"], name="fk_reports_audit_id_audits", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.UniqueConstraint("audit_id", "format", name="uq_reports_audit_id_format"),
    )
    op.create_index("ix_reports_audit_id", "reports", ["audit_id"])
    op.create_table(
        "report_chunks",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name="fk_report_chunks_report_id_reports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_id", "seq", name="pk_report_chunks"),
    )


def downgrade() -> None:
    op.drop_table("report_chunks")
    op.drop_index("ix_reports_audit_id", table_name="reports")
    op.drop_table("reports")
