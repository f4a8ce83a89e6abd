"""Files an audit produced (e.g. lda-search's best model) stored beside its reports.

Revision ID: lda_0005
Revises: alerts_0005
Create Date: 2026-11-30

A produced file is kept like a report, one ``reports`` row (format
``file:<name>``) and its gzip pieces in ``report_chunks``; the format column
grows from 16 to 255 characters to hold the file's name.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "lda_0005"
down_revision: str | None = "alerts_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.alter_column(
            "format", existing_type=sa.String(16), type_=sa.String(255), existing_nullable=False
        )


def downgrade() -> None:
    op.execute("DELETE FROM reports WHERE format LIKE 'file:%'")
    with op.batch_alter_table("reports") as batch:
        batch.alter_column(
            "format", existing_type=sa.String(255), type_=sa.String(16), existing_nullable=False
        )
