"""The object-store version a dataset was registered with (``datasets.etag``).

Revision ID: objstore_0006
Revises: lda_0005
Create Date: 2026-11-30

Shards read a stored dataset by ranged GETs, which a SHA-256 cannot verify; each
GET is pinned (``If-Match``) to the ETag recorded here when the upload was
registered. Datasets registered before (NULL) are read as whole, verified copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "objstore_0006"
down_revision: str | None = "lda_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("etag", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("etag")
