"""Audits over ``dataset.source``: counted in the source database, or its rows pulled.

A count-only audit is counted where the data lives (``audit.engine.pushdown``: one
``GROUP BY``, only the count table travels); any other reads the query's rows into a
project CSV file that the engine reads like an upload (``audit.engine.dbsource``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from audit.errors import AuditInputError
from audit.settings import get_settings


def _source_url(dataset: dict[str, Any]) -> str:
    url = get_settings().source_url(str(dataset["source"]))
    if url is None:
        raise AuditInputError(
            f"dataset.source: no source {dataset['source']!r} is configured on this server "
            f"(BIASAUDIT_SOURCE_{str(dataset['source']).upper()}_URL)",
            field="dataset.source",
        )
    return url


def count_at_source(
    spec: dict[str, Any], *, audit_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Results of a count-only ``dataset.source`` audit counted by the source database
    (``audit.engine.pushdown``), with what the manifest records; None: pull the rows."""
    dataset = spec.get("dataset") or {}
    settings = get_settings()
    if not dataset.get("source") or not settings.source_pushdown:
        return None
    from audit.engine.pushdown import results_at_source

    return results_at_source(
        spec, _source_url(dataset), audit_id=audit_id, max_groups=settings.max_upload_rows
    )


def read_source(
    spec: dict[str, Any], *, project: str, audit_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A ``dataset.source`` spec with its query's rows in a project CSV file instead."""
    from audit.engine.confine import project_roots
    from audit.engine.dbsource import materialize

    dataset = spec.get("dataset") or {}
    if not dataset.get("source"):
        return spec, None
    settings = get_settings()
    url = _source_url(dataset)
    root = project_roots(settings, project).project
    out = root / ".sources" / f"{audit_id}.csv"
    info = materialize(dataset, url, out, max_rows=settings.max_upload_rows)
    spec = copy.deepcopy(spec)
    for key in ("source", "query", "window_start", "window_end"):
        spec["dataset"].pop(key, None)
    spec["dataset"]["path"] = os.path.relpath(out, root)
    return spec, info
