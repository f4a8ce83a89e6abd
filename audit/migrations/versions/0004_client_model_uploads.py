"""Models uploaded over the API: the client's file name, size and file count.

Revision ID: client_0004
Revises: apisec_0002
Create Date: 2026-11-30

``POST /v1/models`` stores a .skops file or an unpacked Hugging Face folder and
records it in ``models`` (which exists since the first revision); these columns
say what was uploaded. Rows written before this migration have NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "client_0004"
down_revision: str | None = "dashboard_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("filename", sa.String(255), nullable=True))
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("files", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("files")
        batch.drop_column("size_bytes")
        batch.drop_column("filename")
