"""People and the tamper-evident trail: ``audits.submitted_by``, ``events``, ``event_head``.

Revision ID: trail_0004
Revises: apisec_0002
Create Date: 2026-11-30

``events`` is append-only: a trigger refuses ``UPDATE`` and ``DELETE`` on
PostgreSQL and on SQLite, so the application cannot rewrite history; a
superuser (or the table owner) can still disable it, which is what
``biasaudit verify-log`` (the hash chain) catches.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "trail_0004"
down_revision: str | None = "apisec_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

PG_TRIGGER = """
CREATE OR REPLACE FUNCTION biasaudit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION biasaudit_events_append_only();
"""
SQLITE_TRIGGERS = (
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events is append-only: DELETE refused'); END",
)


def upgrade() -> None:
    with op.batch_alter_table("audits") as batch:
        batch.add_column(sa.Column("submitted_by", sa.String(200), nullable=True))
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("project", sa.String(100), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("audit_id", sa.String(36), nullable=True),
        sa.Column("result_sha256", sa.String(64), nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.Column("prev_sha256", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
    )
    op.create_index("ix_events_project_seq", "events", ["project", "seq"])
    op.create_index("ix_events_audit_id", "events", ["audit_id"])
    op.create_table(
        "event_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_head"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS biasaudit_events_append_only()")
    op.drop_table("event_head")
    op.drop_index("ix_events_audit_id", table_name="events")
    op.drop_index("ix_events_project_seq", table_name="events")
    op.drop_table("events")
    with op.batch_alter_table("audits") as batch:
        batch.drop_column("submitted_by")
