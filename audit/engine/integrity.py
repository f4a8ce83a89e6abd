"""Expected digests of the inputs: the bytes audited are the bytes uploaded.

A spec may name what its inputs must hash to: ``dataset.sha256`` (the file's
SHA-256) and ``model.sha256`` (the model's fingerprint,
:func:`probes.models.fingerprint.fingerprint`). A worker sets both from the upload's
row for ``dataset.id`` / ``model.id`` (``workers/inputs.py``), so a stored file
changed after its upload fails the audit as an input error naming the id and both
digests, whatever path the audit takes (in one process, in chunks, in shards).

The engine compares the digest it computes anyway (results.json records it): the
bytes are never hashed twice for the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.errors import AuditInputError

MSG_STORED_CHANGED = (
    "{field}: the stored {kind} {id} has sha256 {actual}, not the {expected} recorded at "
    "upload; it was changed after the upload. Upload it again"
)
MSG_EXPECTED = "{field}: {name} has sha256 {actual}, the spec expects {expected}"


class DigestMismatch(AuditInputError):
    """An input does not hash to what was expected (``kind``: dataset or model)."""

    def __init__(self, kind: str, item_id: str | None, expected: str, actual: Any, name: str):
        if item_id:
            field = f"{kind}.id"
            message = MSG_STORED_CHANGED.format(
                field=field, kind=kind, id=item_id, actual=actual, expected=expected
            )
        else:
            field = f"{kind}.sha256"
            message = MSG_EXPECTED.format(field=field, name=name, actual=actual, expected=expected)
        super().__init__(message, field=field)
        self.kind, self.expected, self.actual, self.name = kind, expected, actual, name


def for_upload(exc: Exception, raw_spec: dict[str, Any]) -> Exception:
    """``exc`` naming the upload when the stored spec named one: the worker runs an
    uploaded model by its path (``model.id`` and ``model.path`` may not go together), so
    the engine's ``model.sha256`` mismatch becomes the ``model.id`` one."""
    if not isinstance(exc, DigestMismatch) or exc.field != f"{exc.kind}.sha256":
        return exc
    item_id = (raw_spec.get(exc.kind) or {}).get("id")
    if not item_id:
        return exc
    return DigestMismatch(exc.kind, str(item_id), exc.expected, exc.actual, exc.name)


def check_digest(
    kind: str, item_id: str | None, expected: str | None, actual: str | None, name: str
) -> None:
    """Refuse ``actual`` unless it is ``expected`` (nothing expected: nothing to check).

    ``kind`` is ``dataset`` or ``model``; with ``item_id`` (an upload) the error names
    ``<kind>.id``, otherwise ``<kind>.sha256`` (a digest written in the spec)."""
    if not expected or actual == expected:
        return
    raise DigestMismatch(kind, item_id, expected, actual, name)


def dataset_digest(spec: Any, path: Path) -> str:
    """The SHA-256 of the dataset file ``path`` (read once, or a digest this process
    verified for the unchanged file), checked against ``spec.sha256`` (a DatasetSpec)."""
    from probes.util import file_sha256

    digest = getattr(path, "sha256", None) or file_sha256(path)
    # a StoredFile (read by ranges) has a name, and refuses to be a local path
    check_digest("dataset", spec.id, spec.sha256, digest, str(getattr(path, "name", path)))
    return str(digest)


def check_model(spec: Any, model: Any) -> None:
    """The loaded model's fingerprint (computed by its loader) against ``spec.sha256``
    (a ModelSpec)."""
    if model is None:
        return
    name = Path(spec.path).name if spec.path else "the model"
    check_digest("model", spec.id, spec.sha256, getattr(model, "sha256", None), name)
