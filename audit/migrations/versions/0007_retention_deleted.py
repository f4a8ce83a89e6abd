"""Erased datasets and models keep their row: ``deleted_at`` and ``deleted_by``.

Revision ID: retention_0007
Revises: objstore_0006
Create Date: 2026-11-30

``DELETE /v1/datasets/{id}`` and ``/v1/models/{id}`` (and the retention task) remove
the stored bytes and mark the row: its sha256 stays, because past results.json
documents name it for provenance (docs/security.md, "Data retention and erasure").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "retention_0007"
down_revision: str | None = "objstore_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("datasets", "models")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("deleted_by", sa.String(200), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_by")
            batch.drop_column("deleted_at")
