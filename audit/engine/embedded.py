"""Embedded mode: record an in-process audit in the database (SQLite by default)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from audit.engine.spec import AuditSpec

_UPGRADED: set[str] = set()


def ensure_schema(url: str) -> None:
    """Apply migrations once per process and database."""
    if url not in _UPGRADED:
        from audit.storage.db import upgrade

        upgrade(url)
        _UPGRADED.add(url)


@dataclass
class EmbeddedRecorder:
    """Creates the audit row (running), then stores results or the failure."""

    url: str
    audit_id: str

    @classmethod
    def start(cls, spec: AuditSpec, *, project: str) -> EmbeddedRecorder:
        from audit.settings import get_settings
        from audit.storage.db import session_scope
        from audit.storage.events import local_actor as cli_actor
        from audit.storage.repo import create_audit

        settings = get_settings()
        url = settings.db_url
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        ensure_schema(url)
        with session_scope(url) as session:
            audit = create_audit(
                session=session,
                project=project,
                spec=spec.model_dump(mode="json"),
                name=spec.name,
                domain=spec.domain,
                spec_sha256=spec.sha256(),
                status="running",
                submitted_by=cli_actor(),
            )
            audit_id = audit.id
        return cls(url=url, audit_id=audit_id)

    def succeed(
        self,
        results: dict[str, object],
        *,
        reports: Mapping[str, str] | None = None,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> None:
        """Store the results (and the reports already rendered, e.g. ``{"html": ...}``, and
        the files the probes produced)."""
        from audit.storage.db import session_scope
        from audit.storage.events import local_actor as cli_actor
        from audit.storage.repo import store_results

        with session_scope(self.url) as session:
            store_results(
                session=session,
                audit_id=self.audit_id,
                results=results,
                reports=reports,
                actor=cli_actor(),
                artifacts=artifacts,
            )

    def fail(self, exc: BaseException) -> None:
        from audit.storage.db import session_scope
        from audit.storage.events import local_actor as cli_actor
        from audit.storage.repo import mark_failed

        with session_scope(self.url) as session:
            mark_failed(
                session=session,
                audit_id=self.audit_id,
                error=f"{type(exc).__name__}: {exc}",
                actor=cli_actor(),
            )
