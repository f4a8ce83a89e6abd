"""Datasets: the distinct-value count of each column, recorded at upload (capped).

Revision ID: apisec_0002
Revises: workers_0002
Create Date: 2026-11-30

``column_levels`` maps each column to its number of distinct values, counted
while the upload is checked; counting stops past a bound, so a count of
bound + 1 means "more than the bound". The API refuses at submission a
protected column with more levels than ``policy.max_levels``. Rows uploaded
before this migration have NULL: nothing is known, the worker decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "apisec_0002"
down_revision: str | None = "workers_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("column_levels", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("column_levels")
