"""Validate a submitted spec and make it safe to hand to a worker.

Shared by ``POST /v1/audits`` (through the group commit) and ``POST /v1/schedules``.
A spec is refused at submission whenever the worker would refuse it at once:

- the body: more than 100 probes, nesting deeper than 64 levels, NUL characters
  (:mod:`audit.api.body`), then :func:`audit.engine.spec.parse_spec`; errors are
  ``422`` naming the field path (``dataset.protected``, ``probes[0].attributes``);
- ``model.id`` must be a model of the caller's project (``404`` otherwise) of the
  spec's ``model.kind`` (``422``);
- ``dataset.id`` must be a dataset of the caller's project (``404`` otherwise,
  also for another project's id), and so must a probe's uploaded file
  (lda-search's ``probes[i].train_id``); the spec's columns (dataset fields, ``model.features``,
  each probe's ``*_column``) must exist in it, and a
  protected (or strata) column may not have more distinct values than ``policy.max_levels``
  (counted at upload);
- a spec with no dataset is accepted when none of its probes reads one
  (templates, pair sets): the probe says (``audit.engine.spec.needs_dataset``);
- every path and ``model.trusted`` go through :func:`audit.engine.confine.confine_spec`,
  the same rule the worker applies again; accepted paths are stored relative to
  the project's data folder;
- what the engine would refuse before reading anything: a model without
  ``model.path``, predictions without ``dataset.prediction``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from audit.api.body import check_tree
from audit.api.errors import ApiError, not_found
from audit.api.levels import LEVELS_CAP
from audit.engine.confine import confine_spec, project_roots, upload_refs
from audit.engine.spec import MAX_PROBES, AuditSpec, parse_spec
from audit.errors import MSG_MISSING_COLUMN, AuditInputError, SpecError, did_you_mean
from audit.settings import Settings
from audit.storage.db import lock_writes
from audit.storage.erasure import find_deleted
from audit.storage.models import plausible_id
from audit.storage.repo import get_dataset, get_model

MSG_BOTH = "dataset.path: give dataset.id or dataset.path, not both"
MSG_NO_SOURCE = (
    "dataset.source: no source {name!r} is configured on this server "
    "(an administrator sets BIASAUDIT_SOURCE_{env}_URL)"
)
MSG_SHA_MISMATCH = "dataset.sha256: {given} does not match dataset {id} (sha256 {actual})"
MSG_TOO_MANY_PROBES = "probes: at most {limit} probes in one spec, got {count}"
MSG_TOO_MANY_LEVELS = (
    "{field}: column {column!r} has {count} distinct values, more than "
    "policy.max_levels={limit}; a protected attribute or stratum has a few groups "
    "(is it an id column?). Raise policy.max_levels if this is intended"
)
MSG_MODEL_PATH = (
    "model.path: required for model.kind {kind!r}: the model file or folder in the project's "
    "data folder (or registered:NAME)"
)
MSG_MODEL_TASK = (
    "model.task: required for model.kind 'huggingface' "
    "(text-classification | fill-mask | embedding | causal-lm)"
)
MSG_PREDICTION = (
    "dataset.prediction: required when model.kind is 'predictions' "
    "(the column holding the model's decisions)"
)
MSG_MODEL_KIND = (
    "model.kind: model {id} is a {kind!r} model (uploaded with POST /v1/models), not "
    "{given!r}; set model.kind: {kind}"
)
MSG_MODEL_SHA = (
    "model.sha256: {given} is not the fingerprint of model {id} recorded at upload; "
    "leave it out, or name the model you meant"
)
MSG_DELETED = "{kind} {id!r} was deleted at {when} (by {by}); upload it again to audit it"
MSG_MISSING_INPUT = "{field}: column {column!r} not found in dataset {id}; columns are: {columns}"
_COLUMNS_SHOWN = 50


class DatasetRef(Protocol):
    """What a submission needs of a dataset row."""

    @property
    def id(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def columns(self) -> Any: ...

    @property
    def column_levels(self) -> Any: ...


class ModelRef(Protocol):
    """What a submission needs of a model row."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...


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


def parse_submitted(raw: Any, *, prefix: str = "") -> AuditSpec:
    """Parse ``raw`` as a spec; :class:`ApiError` 422 naming the field path if it is invalid.

    The cheap refusals come first, before any validation work: too many probes,
    nesting too deep, strings with a NUL character (PostgreSQL cannot store them).
    """
    probes = raw.get("probes") if isinstance(raw, dict) else None
    if isinstance(probes, list) and len(probes) > MAX_PROBES:
        message = MSG_TOO_MANY_PROBES.format(limit=MAX_PROBES, count=len(probes))
        raise ApiError(422, prefix + message, field=f"{prefix}probes")
    check_tree(raw, prefix=prefix)
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
    parsed = parse_submitted(raw, prefix=prefix)
    lock_writes(session)  # SQLite: exclusive with an erasure (PostgreSQL: row locks)
    return resolve_spec(
        raw,
        parsed,
        project=project,
        settings=settings,
        find_dataset=lambda dataset_id: get_dataset(
            session=session, project=project, dataset_id=dataset_id, lock=True
        ),
        find_model=model_finder(session, project),
        find_deleted=deleted_finder(session, project),
        prefix=prefix,
    )


def deleted_finder(session: Session, project: str) -> Callable[[str, str], Any | None]:
    """``find_deleted`` for :func:`resolve_spec`: the project's erased dataset or model."""
    return lambda kind, item_id: find_deleted(
        session=session, project=project, kind=kind, item_id=item_id
    )


def model_finder(session: Session, project: str) -> Callable[[str], ModelRef | None]:
    """``find_model`` for :func:`resolve_spec`: the project's model by id, or None;
    share-locked until the submission commits (an erasure waits, then sees the audit)."""
    return lambda model_id: get_model(
        session=session, project=project, model_id=model_id, lock=True
    )


def _refuse(message: str, field: str, prefix: str) -> ApiError:
    return ApiError(422, prefix + message, field=prefix + field)


def _shown(columns: list[str]) -> str:
    more = ", ..." if len(columns) > _COLUMNS_SHOWN else ""
    return ", ".join(columns[:_COLUMNS_SHOWN]) + more


def _input_columns(spec: AuditSpec) -> list[tuple[str, str]]:
    """Other columns the audit reads: the model's features, and each probe's ``*_column``."""
    named = [(f"model.features[{i}]", c) for i, c in enumerate(spec.model.features or [])]
    for i, probe in enumerate(spec.probes):
        for key, value in probe.items():
            if key.endswith("_column") and isinstance(value, str) and value:
                named.append((f"probes[{i}].{key}", value))
    return named


def check_dataset(spec: AuditSpec, row: DatasetRef, *, prefix: str = "") -> None:
    """The stored dataset has every column the spec names, and protected columns with
    at most ``policy.max_levels`` distinct values (as counted at upload)."""
    ds = spec.dataset
    if ds.sha256 is not None and ds.sha256 != row.sha256:
        message = MSG_SHA_MISMATCH.format(given=ds.sha256, id=row.id, actual=row.sha256)
        raise _refuse(message, "dataset.sha256", prefix)
    columns = [str(c) for c in row.columns or []]
    known = set(columns)
    named = [(f"protected[{i}]", c) for i, c in enumerate(ds.protected)]
    named += [(f, getattr(ds, f)) for f in ("label", "prediction", "score", "strata")]
    for field, column in named:
        if column and column not in known:
            shown = ", ".join(columns[:_COLUMNS_SHOWN]) + (
                ", ..." if len(columns) > _COLUMNS_SHOWN else ""
            )
            message = MSG_MISSING_COLUMN.format(
                field=field,
                column=column,
                file=f"dataset {row.id}",
                columns=shown,
                hint=did_you_mean(column, columns),
            )
            raise _refuse(message, f"dataset.{field}", prefix)
    for field, column in _input_columns(spec):
        if column not in known:
            message = MSG_MISSING_INPUT.format(
                field=field, column=column, id=row.id, columns=_shown(columns)
            )
            raise _refuse(message, field, prefix)
    levels = row.column_levels or {}
    leveled = [(f"dataset.protected[{i}]", c) for i, c in enumerate(ds.protected)]
    leveled += [("dataset.strata", ds.strata)] if ds.strata else []
    for field, column in leveled:
        count = levels.get(column)
        if isinstance(count, int) and count > spec.policy.max_levels:
            shown_count = f"more than {LEVELS_CAP}" if count > LEVELS_CAP else str(count)
            message = MSG_TOO_MANY_LEVELS.format(
                field=field.split("[", 1)[0],
                column=column,
                count=shown_count,
                limit=spec.policy.max_levels,
            )
            raise _refuse(message, field, prefix)


def check_runnable(spec: AuditSpec, *, prefix: str = "") -> None:
    """Refuse what the engine would refuse before reading any input."""
    model = spec.model
    if model.kind != "predictions" and not model.path and not model.id:
        raise _refuse(MSG_MODEL_PATH.format(kind=model.kind), "model.path", prefix)
    if model.kind == "huggingface" and model.task is None:
        raise _refuse(MSG_MODEL_TASK, "model.task", prefix)
    has_data = bool(spec.dataset.path or spec.dataset.id)
    if model.kind == "predictions" and has_data and not spec.dataset.prediction:
        raise _refuse(MSG_PREDICTION, "dataset.prediction", prefix)


def resolve_spec(
    raw: Any,
    spec: AuditSpec,
    *,
    project: str,
    settings: Settings,
    find_dataset: Callable[[str], DatasetRef | None],
    find_model: Callable[[str], ModelRef | None] | None = None,
    find_deleted: Callable[[str, str], Any | None] | None = None,
    prefix: str = "",
) -> PreparedSpec:
    """Check a parsed spec's inputs for ``project``; the spec to store has project-relative paths.

    ``find_dataset(id)`` returns the project's dataset row or None; the API's
    group commit passes rows it fetched for a whole batch in one query.
    ``find_model(id)`` likewise for ``model.id`` (a model uploaded to the project).
    ``find_deleted(kind, id)``, asked only for an id not found, returns the project's
    deleted row so the 404 says when it was erased.
    """

    def missing(kind: str, item_id: str, field: str) -> ApiError:
        gone = find_deleted(kind, item_id) if find_deleted and plausible_id(item_id) else None
        if gone is None:
            return not_found(kind, item_id[:100], field=prefix + field)
        when = gone.deleted_at.isoformat(timespec="seconds") if gone.deleted_at else "?"
        message = MSG_DELETED.format(kind=kind, id=item_id, when=when, by=gone.deleted_by or "?")
        return ApiError(404, message, field=prefix + field)

    dataset_sha: str | None = None
    ds = spec.dataset
    if ds.id is not None and ds.path is not None:
        raise _refuse(MSG_BOTH, "dataset.path", prefix)
    if ds.source is not None and settings.source_url(ds.source) is None:
        message = MSG_NO_SOURCE.format(name=ds.source, env=ds.source.upper())
        raise _refuse(message, "dataset.source", prefix)
    if ds.id is not None:
        row = find_dataset(ds.id)
        if row is None:
            raise missing("dataset", ds.id, "dataset.id")
        check_dataset(spec, row, prefix=prefix)
        dataset_sha = row.sha256
    for ref in upload_refs(raw):  # a probe's file uploaded to the project (train_id)
        if not plausible_id(ref.dataset_id) or find_dataset(ref.dataset_id) is None:
            raise missing("dataset", ref.dataset_id, ref.field)
    if spec.model.id is not None:
        found = find_model(spec.model.id) if find_model and plausible_id(spec.model.id) else None
        if found is None:
            raise missing("model", spec.model.id, "model.id")
        if spec.model.sha256 and spec.model.sha256 != getattr(found, "sha256", None):
            message = MSG_MODEL_SHA.format(given=spec.model.sha256, id=found.id)
            raise _refuse(message, "model.sha256", prefix)
        if found.kind != spec.model.kind:
            message = MSG_MODEL_KIND.format(id=found.id, kind=found.kind, given=spec.model.kind)
            raise _refuse(message, "model.kind", prefix)
    check_runnable(spec, prefix=prefix)
    try:
        confined = confine_spec(raw, roots=project_roots(settings, project), prefix=prefix)
    except AuditInputError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    stored = confined.stored
    # The hash is of the spec as stored; unchanged, it is the parsed one.
    normalized = AuditSpec.model_validate(stored) if confined.changed else spec
    return PreparedSpec(
        spec=spec, stored=stored, spec_sha256=normalized.sha256(), dataset_sha256=dataset_sha
    )
