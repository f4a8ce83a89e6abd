"""What a project has stored: pages of its datasets and models, and which audits used them.

``GET /v1/datasets`` and ``GET /v1/models`` list a project's items newest first, in
pages like ``GET /v1/audits`` (:mod:`audit.storage.listing`); each item carries how
many of the project's audits named it (``dataset.id`` or a probe's uploaded file such
as ``train_id``; ``model.id``) and when the latest of them was submitted.
:func:`spec_refs` is the one reading of "which stored items a spec names": the
listing, the in-use check before a deletion and the retention task all use it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from audit.storage.listing import MAX_PAGE
from audit.storage.models import Audit, Dataset, ModelArtifact

DATASET = "dataset"
MODEL = "model"
TABLES: dict[str, Any] = {DATASET: Dataset, MODEL: ModelArtifact}
USAGE_BATCH = 1000
PREFILTER_IDS = MAX_PAGE  # up to this many ids, the database picks the specs naming them


@dataclass(frozen=True)
class Usage:
    """How many audits named an item, and when the latest was submitted (None: never)."""

    audits: int = 0
    last_used_at: datetime | None = None


def spec_refs(spec: Any) -> dict[str, set[str]]:
    """The stored items a (stored) spec names: ``{"dataset": ids, "model": ids}``.

    Datasets are ``dataset.id`` and every probe's uploaded file (``probes[i].train_id``);
    models are ``model.id``. A malformed spec names nothing."""
    from audit.engine.confine import upload_refs

    refs: dict[str, set[str]] = {DATASET: set(), MODEL: set()}
    if not isinstance(spec, dict):
        return refs
    for kind in (DATASET, MODEL):
        section = spec.get(kind)
        if isinstance(section, dict) and isinstance(section.get("id"), str):
            refs[kind].add(section["id"])
    refs[DATASET].update(ref.dataset_id for ref in upload_refs(spec))
    return refs


def list_items(
    *,
    session: Session,
    project: str,
    kind: str,
    limit: int = 50,
    offset: int = 0,
    deleted: bool = False,
) -> tuple[list[Any], int]:
    """One page of a project's datasets or models (``kind``), newest first, and how many
    there are; live ones, or with ``deleted`` only the erased ones."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset: must be >= 0, got {offset}")
    table = TABLES[kind]
    state = table.deleted_at.is_not(None) if deleted else table.deleted_at.is_(None)
    conditions = [table.project == project, state]
    total = session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
    rows = session.scalars(
        select(table)
        .where(*conditions)
        .order_by(table.created_at.desc(), table.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), int(total)


def usage(
    *, session: Session, project: str, kind: str, ids: list[str], since: datetime | None = None
) -> dict[str, Usage]:
    """For each of ``ids`` (a ``kind``), the project's audits (submitted at or after
    ``since``, when given) that named it; ids no audit named are left out.

    The database keeps the specs whose text holds one of the ids (a page's worth; for
    more ids, every spec); :func:`spec_refs` then decides, so a probe's uploaded file
    counts like ``dataset.id``. Specs are read in batches."""
    wanted = set(ids)
    counts: dict[str, int] = defaultdict(int)
    last: dict[str, datetime] = {}
    if not wanted:
        return {}
    query = select(Audit.spec, Audit.created_at).where(Audit.project == project)
    if since is not None:
        query = query.where(Audit.created_at >= since)
    if len(wanted) <= PREFILTER_IDS:
        text = cast(Audit.spec, Text)
        query = query.where(or_(*(text.contains(i, autoescape=True) for i in sorted(wanted))))
    result = session.execute(query.execution_options(yield_per=USAGE_BATCH))
    for spec, created in result:
        for item in spec_refs(spec)[kind] & wanted:
            counts[item] += 1
            if item not in last or created > last[item]:
                last[item] = created
    return {item: Usage(audits=n, last_used_at=last[item]) for item, n in counts.items()}
