"""A probe's file given as an uploaded dataset (lda-search's ``probes[i].train_id``).

``biasaudit submit`` uploads a probe's local file with ``POST /v1/datasets`` (like
the dataset) and names it by id. The worker looks the id up *in the audit's
project* (another project's id is not found: an input error naming the field),
takes this machine's verified copy exactly as for ``dataset.id`` and puts its
project-relative path in the file key (``train``); ``confine_spec`` then checks
that path like every other, inside the project's data folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from audit.engine.confine import upload_refs
from audit.errors import AuditInputError
from audit.storage import repo, session_scope
from audit.storage.models import plausible_id
from audit.storage.objects import get_store, stored_dataset

MSG_NO_UPLOAD = (
    "{field}: no dataset {id!r} in project {project!r}; upload the file with "
    "POST /v1/datasets (biasaudit submit does)"
)


def resolve_probe_uploads(spec: dict[str, Any], *, project: str, root: Path) -> None:
    """Replace each ``probes[i].<key>_id`` of ``spec`` (in place) with ``<key>``: the
    project-relative path of the uploaded file's local copy."""
    for ref in upload_refs(spec):
        found = None
        if plausible_id(ref.dataset_id):
            with session_scope() as session:
                record = repo.get_dataset(
                    session=session, project=project, dataset_id=ref.dataset_id
                )
                found = None if record is None else (record.path, record.sha256)
        if found is None:
            message = MSG_NO_UPLOAD.format(
                field=ref.field, id=ref.dataset_id[:100], project=project
            )
            raise AuditInputError(message, field=ref.field)
        local = stored_dataset(get_store(), found[0], sha256=found[1], root=root)
        probe = spec["probes"][ref.index]
        probe[ref.key] = os.path.relpath(local, root)
        del probe[f"{ref.key}_id"]
