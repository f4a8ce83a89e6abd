"""Validate a submitted spec and make it safe to hand to a worker.

Shared by ``POST /v1/audits`` and ``POST /v1/schedules``:

- the spec is parsed with :func:`audit.engine.spec.parse_spec`; errors become ``422``
  naming the field path (``dataset.protected``, ``probes[0].attributes``);
- ``dataset.id`` must be a dataset of the caller's project (``404`` otherwise,
  also for another project's id); it stays in the stored spec and the worker
  resolves it;
- every file path the worker would open (``dataset.path``, ``model.path``,
  ``probes[i].*_path``) must resolve inside the project's data folder
  (``data_dir/<project>``): ``..``, absolute paths and symlinks cannot escape.
  Accepted paths are stored absolute, so the worker needs no base folder.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from audit.api.errors import ApiError, not_found
from audit.engine.spec import AuditSpec, parse_spec
from audit.errors import SpecError
from audit.settings import Settings
from audit.storage.repo import get_dataset
from probes.models.safety import UnsafeModelError, resolve_within

MSG_NO_DATASET = (
    "dataset.id: required: upload the file with POST /v1/datasets and give its id "
    "(or a dataset.path inside the project's data folder)"
)
MSG_BOTH = "dataset.path: give dataset.id or dataset.path, not both"
MSG_NOT_FOUND = "{field}: file not found in the project's data folder: {path}"
MSG_BAD_PATH = "{field}: not a usable file path ({error})"
MSG_NUL = "{field}: contains a NUL character (\\u0000), which cannot be stored"
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MSG_SHA_MISMATCH = "dataset.sha256: {given} does not match dataset {id} (sha256 {actual})"


class DatasetRef(Protocol):
    """What a submission needs of a dataset row: its content hash."""

    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class PreparedSpec:
    """A validated spec, the dict to store, and what is already known about its inputs."""

    spec: AuditSpec
    stored: dict[str, Any]
    spec_sha256: str
    dataset_sha256: str | None


def spec_error(exc: SpecError, *, prefix: str = "") -> ApiError:
    """422 naming the first field path; ``errors`` lists them all."""
    errors = [{"field": prefix + path, "message": msg} for path, msg in exc.errors]
    field = errors[0]["field"] if errors else (prefix.rstrip(".") or None)
    detail = str(exc) if not prefix else "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ApiError(422, detail, field=field, extra={"errors": errors})


def project_dir(settings: Settings, project: str) -> Path:
    """The folder holding a project's uploads: ``data_dir/<project>``."""
    return settings.data_path / project


def _confine(value: str, *, root: Path, field: str, must_exist: bool = True) -> str:
    try:
        real = resolve_within(value, root, field=field)
        exists = real.exists()
    except UnsafeModelError as exc:
        raise ApiError(422, str(exc), field=field) from None
    except (ValueError, OSError) as exc:  # NUL byte, name too long, ...
        raise ApiError(422, MSG_BAD_PATH.format(field=field, error=exc), field=field) from None
    if must_exist and not exists:
        raise ApiError(422, MSG_NOT_FOUND.format(field=field, path=value), field=field)
    return str(real)


def _nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) in ``value`` holding a NUL, or None."""
    if isinstance(value, str):
        return path or "spec" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = _nul_path(item, where)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


def parse_submitted(raw: Any, *, prefix: str = "") -> AuditSpec:
    """Parse ``raw`` as a spec; :class:`ApiError` 422 naming the field path if it is invalid.

    Strings with a NUL character are refused too: PostgreSQL cannot store them.
    """
    nul = _nul_path(raw)
    if nul is not None:
        raise ApiError(422, MSG_NUL.format(field=prefix + nul), field=prefix + nul)
    try:
        spec, _ = parse_spec(raw)
    except SpecError as exc:
        raise spec_error(exc, prefix=prefix) from None
    return spec


def prepare_spec(
    raw: Any, *, session: Session, project: str, settings: Settings, prefix: str = ""
) -> PreparedSpec:
    """Validate ``raw`` for ``project``; raise :class:`ApiError` (404/422) when it cannot run.

    ``prefix`` is prepended to field paths (``spec.`` for schedules).
    """
    return resolve_spec(
        raw,
        parse_submitted(raw, prefix=prefix),
        project=project,
        settings=settings,
        find_dataset=lambda dataset_id: get_dataset(
            session=session, project=project, dataset_id=dataset_id
        ),
        prefix=prefix,
    )


def resolve_spec(
    raw: Any,
    spec: AuditSpec,
    *,
    project: str,
    settings: Settings,
    find_dataset: Callable[[str], DatasetRef | None],
    prefix: str = "",
) -> PreparedSpec:
    """Check a parsed spec's inputs for ``project`` and make its paths absolute.

    ``find_dataset(id)`` returns the project's dataset row or None; the API's
    group commit passes rows it fetched for a whole batch in one query.
    """
    stored = copy.deepcopy(raw)
    changed = False
    root = project_dir(settings, project)
    dataset_sha: str | None = None
    ds = spec.dataset
    if ds.id is not None and ds.path is not None:
        raise ApiError(422, MSG_BOTH, field=f"{prefix}dataset.path")
    if ds.id is not None:
        row = find_dataset(ds.id)
        if row is None:
            raise not_found("dataset", ds.id, field=f"{prefix}dataset.id")
        if ds.sha256 is not None and ds.sha256 != row.sha256:
            raise ApiError(
                422,
                MSG_SHA_MISMATCH.format(given=ds.sha256, id=ds.id, actual=row.sha256),
                field=f"{prefix}dataset.sha256",
            )
        dataset_sha = row.sha256
    elif ds.path is not None:
        stored["dataset"]["path"] = _confine(ds.path, root=root, field=f"{prefix}dataset.path")
        changed = True
    else:
        raise ApiError(422, MSG_NO_DATASET, field=f"{prefix}dataset.id")
    if spec.model.path is not None:
        hub_name = (
            settings.allow_hub_models
            and HUB_NAME.match(spec.model.path) is not None
            and ".." not in spec.model.path
            and not (root / spec.model.path).exists()
        )
        if not hub_name:
            stored["model"]["path"] = _confine(
                spec.model.path, root=root, field=f"{prefix}model.path"
            )
            changed = True
    for i, probe in enumerate(stored.get("probes") or []):
        for key, value in list(probe.items()):
            if key.endswith("_path") and isinstance(value, str):
                probe[key] = _confine(value, root=root, field=f"{prefix}probes[{i}].{key}")
                changed = True
    # The hash is of the spec as stored (absolute paths); unchanged, it is the parsed one.
    normalized = AuditSpec.model_validate(stored) if changed else spec
    return PreparedSpec(
        spec=spec, stored=stored, spec_sha256=normalized.sha256(), dataset_sha256=dataset_sha
    )
