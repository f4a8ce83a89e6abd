"""Persistence: SQLAlchemy models, sessions, Alembic migrations and storage operations.

``db`` holds engines, sessions and ``upgrade``; ``models`` the tables; ``repo``
the operations (keyword-only, taking a session), e.g.::

    from audit.storage import repo, session_scope

    with session_scope() as session:
        audit = repo.get_audit(session=session, project="acme", audit_id=audit_id)
"""

from audit.storage.db import make_engine, ping, session_scope, upgrade

__all__ = ["make_engine", "ping", "session_scope", "upgrade"]
