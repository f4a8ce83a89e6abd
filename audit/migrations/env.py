"""Alembic environment, run programmatically by ``audit.storage.db.upgrade``.

No alembic.ini: the caller passes an open connection (already holding the
migration lock) in ``config.attributes["connection"]``; when run without one
(e.g. ``alembic -x`` by hand with ``sqlalchemy.url`` set) it opens its own.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from audit.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # BEGIN IMMEDIATE makes DDL transactional on SQLite too.
        transactional_ddl=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as own:
        _configure(own)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
