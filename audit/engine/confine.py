"""Every file a service audit may open, confined to its project; one rule for API and workers.

A spec that came over HTTP (directly, or through a schedule) names files by
paths the client chose. :func:`confine_spec` checks each of them, for the API
at submission and again in the worker before anything is opened:

- ``dataset.path``, ``model.path`` and every probe's ``*_path`` (and the keys a
  probe declares in ``file_fields``, such as lda-search's ``train``) must resolve
  (``..``, absolute paths, ``~``, symlinks all followed first) inside the
  project's data folder, ``BIASAUDIT_DATA_DIR/<project>``; ``dataset.path``
  must be a file;
- ``model.trusted: true`` (load pickle/joblib files, which runs code) is refused:
  it is honoured only in the embedded mode (``biasaudit run``, ``run_audit``),
  where the person running the audit owns the files. A pickle model runs in a
  service only when an operator registered it: ``model.path: registered:NAME``
  names a file under ``BIASAUDIT_TRUSTED_MODEL_DIR/<project>``, a folder the
  operator fills and clients cannot write to;
- a model is never loaded from the datasets storage: ``model.path`` may not be
  an uploaded dataset file, nor the project folder that holds them.

Messages name the field and the path as the client wrote it, never the
server's folders. The result holds the spec twice: ``stored`` with paths
relative to the project folder (what the API records), and ``resolved``, what
the engine runs with the project folder as its base folder (dataset and
model paths project-relative, so results name no server folder; probe files
and registered models absolute, as the probes open them).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import AuditInputError

REGISTERED = "registered:"
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What an upload is stored as: <uuid>.<ext> (or its temporary file) in the project folder.
UPLOAD_NAME = re.compile(
    r"^\.?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"(\.csv|\.csv\.gz|\.csv\.zip|\.parquet|\.upload\.tmp)$"
)

MSG_EMPTY = "{field}: must not be empty; give a file inside the project's data folder"
MSG_OUTSIDE = (
    "{field}: {value!r} is outside the project's data folder; give a path relative to it "
    "(an uploaded dataset: dataset.id)"
)
MSG_NOT_FOUND = "{field}: file not found in the project's data folder: {value}"
MSG_NOT_A_FILE = (
    "{field}: {value!r} is a folder, not a file; give a file in the project's data folder"
)
MSG_BAD_PATH = "{field}: {value!r} is not a usable file path ({error})"
MSG_TRUSTED = (
    "{field}: true is refused for audits run by the service (it lets a pickle/joblib "
    "file run code on the worker); it is honoured only by 'biasaudit run' and run_audit on "
    "your own files. Save the model with skops (.skops), or ask the operator to register it "
    "and use model.path: registered:NAME"
)
MSG_DATASET_AS_MODEL = (
    "{field}: {value!r} is in the datasets storage (an uploaded dataset, or the folder "
    "holding them); a model is never loaded from an upload"
)
MSG_NO_REGISTRY = (
    "{field}: {value!r} names a registered model, but this server has none "
    "(the operator sets BIASAUDIT_TRUSTED_MODEL_DIR)"
)
MSG_NOT_REGISTERED = "{field}: no registered model {name!r} for this project"


@dataclass(frozen=True)
class Roots:
    """The folders of one project: its data folder and its registered models (if any)."""

    project: Path
    registered: Path | None = None
    allow_hub: bool = False


def project_roots(settings: Any, project: str) -> Roots:
    """The :class:`Roots` of ``project`` under ``settings`` (a :class:`audit.settings.Settings`)."""
    registered = settings.trusted_model_dir
    return Roots(
        project=settings.data_path / project,
        registered=registered / project if registered is not None else None,
        allow_hub=settings.allow_hub_models,
    )


@dataclass(frozen=True)
class ConfinedSpec:
    """The spec with project-relative paths (``stored``) and absolute ones (``resolved``)."""

    stored: dict[str, Any]
    resolved: dict[str, Any]
    changed: bool


def _asks_trust(value: Any) -> bool:
    """Whether ``model.trusted`` would be read as true (or is not a boolean at all)."""
    if value is None or value is False:
        return False
    from pydantic import TypeAdapter, ValidationError

    try:
        return bool(TypeAdapter(bool).validate_python(value))
    except ValidationError:
        return True


def _refuse(template: str, field: str, **values: Any) -> AuditInputError:
    if isinstance(values.get("value"), str) and len(values["value"]) > 200:
        values["value"] = values["value"][:200] + "..."
    return AuditInputError(template.format(field=field, **values), field=field)


def _within(value: Any, root: Path, field: str) -> Path:
    """The real location of ``value`` (relative to ``root``), refused unless inside ``root``."""
    if not isinstance(value, str):
        raise _refuse(MSG_BAD_PATH, field, value=value, error="not a string")
    if not value.strip():
        raise _refuse(MSG_EMPTY, field)
    try:
        real_root = root.resolve()
        candidate = Path(value)
        real = (candidate if candidate.is_absolute() else real_root / candidate).resolve()
        real.exists()  # a NUL byte or an over-long name fails here, not later
    except (ValueError, OSError, RuntimeError) as exc:  # NUL, name too long, symlink loop
        raise _refuse(MSG_BAD_PATH, field, value=value, error=type(exc).__name__) from None
    if not real.is_relative_to(real_root):
        raise _refuse(MSG_OUTSIDE, field, value=value)
    return real


def _existing_file(value: Any, root: Path, field: str, *, folder_ok: bool) -> Path:
    real = _within(value, root, field)
    if not real.exists():
        raise _refuse(MSG_NOT_FOUND, field, value=value)
    if not folder_ok and not real.is_file():
        raise _refuse(MSG_NOT_A_FILE, field, value=value)
    return real


def _relative(real: Path, root: Path) -> str:
    return real.relative_to(root.resolve()).as_posix() or "."


def is_dataset_storage(real: Path, project_root: Path) -> bool:
    """True for the project folder itself (it holds the uploads) and for an upload file."""
    root = project_root.resolve()
    return real == root or (real.parent == root and UPLOAD_NAME.match(real.name) is not None)


def _model_path(
    value: Any, roots: Roots, prefix: str, stored: dict[str, Any], resolved: dict[str, Any]
) -> None:
    field = f"{prefix}model.path"
    if isinstance(value, str) and value.startswith(REGISTERED):
        name = value[len(REGISTERED) :]
        if roots.registered is None:
            raise _refuse(MSG_NO_REGISTRY, field, value=value)
        real = _within(name, roots.registered, field)
        if not real.exists():
            raise _refuse(MSG_NOT_REGISTERED, field, name=name)
        stored["model"]["path"] = REGISTERED + _relative(real, roots.registered)
        resolved["model"]["path"] = str(real)  # outside the base folder: absolute
        resolved["model"]["trusted"] = True  # the operator put it there
        return
    if (
        roots.allow_hub
        and isinstance(value, str)
        and HUB_NAME.match(value)
        and ".." not in value
        and not (roots.project / value).exists()
    ):
        return  # a Hugging Face Hub name, fetched by the loader (network allowed by the operator)
    real = _existing_file(value, roots.project, field, folder_ok=True)
    if is_dataset_storage(real, roots.project):
        raise _refuse(MSG_DATASET_AS_MODEL, field, value=value)
    stored["model"]["path"] = resolved["model"]["path"] = _relative(real, roots.project)


def _is_file_key(probe: dict[str, Any], key: str) -> bool:
    """``*_path`` keys, and the keys a probe declares in ``file_fields`` (e.g. ``train``)."""
    if key.endswith("_path"):
        return True
    from probes.base import ProbeError, get_probe

    try:
        return key in get_probe(str(probe.get("kind"))).file_fields
    except ProbeError:  # an unknown kind: the spec validation names it
        return False


@dataclass(frozen=True)
class UploadRef:
    """A probe's file given as an uploaded dataset's id: ``probes[index].<key>_id``."""

    index: int
    key: str  # the file key, e.g. "train"
    dataset_id: str

    @property
    def field(self) -> str:
        return f"probes[{self.index}].{self.key}_id"


def upload_refs(raw: dict[str, Any]) -> list[UploadRef]:
    """Every ``probes[i].<key>_id`` of a key the probe declares in ``upload_fields``
    (lda-search's ``train_id``): files the service resolves from the project's uploads."""
    from probes.base import ProbeError, get_probe

    out = []
    for i, probe in enumerate(raw.get("probes") or []):
        if not isinstance(probe, dict):
            continue
        try:
            keys = get_probe(str(probe.get("kind"))).upload_fields
        except ProbeError:  # an unknown kind: the spec validation names it
            continue
        out += [
            UploadRef(i, k, probe[f"{k}_id"]) for k in keys if isinstance(probe.get(f"{k}_id"), str)
        ]
    return out


def _has_paths(raw: dict[str, Any]) -> bool:
    for section in ("model", "dataset"):
        part = raw.get(section)
        if isinstance(part, dict) and part.get("path") is not None:
            return True
    probes = raw.get("probes") or []
    return any(
        isinstance(p, dict) and any(_is_file_key(p, k) and v is not None for k, v in p.items())
        for p in probes
    )


def confine_spec(raw: dict[str, Any], *, roots: Roots, prefix: str = "") -> ConfinedSpec:
    """Check every path of a service audit's spec ``raw`` (see the module docstring).

    ``prefix`` is put before field names (``spec.`` for schedules). Raises
    :class:`AuditInputError` naming the field; ``raw`` itself is not changed (a spec
    without paths is returned as it is, not copied).
    """
    model = raw.get("model")
    if isinstance(model, dict) and _asks_trust(model.get("trusted")):
        raise _refuse(MSG_TRUSTED, f"{prefix}model.trusted")
    if not _has_paths(raw):  # the common case (dataset.id): nothing to copy or check
        return ConfinedSpec(stored=raw, resolved=raw, changed=False)
    stored = copy.deepcopy(raw)
    resolved = copy.deepcopy(raw)
    changed = False
    if isinstance(model, dict):
        if model.get("path") is not None:
            _model_path(model["path"], roots, prefix, stored, resolved)
            changed = True
    dataset = raw.get("dataset")
    if isinstance(dataset, dict) and dataset.get("path") is not None:
        field = f"{prefix}dataset.path"
        real = _existing_file(dataset["path"], roots.project, field, folder_ok=False)
        stored["dataset"]["path"] = resolved["dataset"]["path"] = _relative(real, roots.project)
        changed = True
    for i, probe in enumerate(raw.get("probes") or []):
        if not isinstance(probe, dict):
            continue
        for key, value in probe.items():
            if _is_file_key(probe, key) and value is not None:
                field = f"{prefix}probes[{i}].{key}"
                real = _existing_file(value, roots.project, field, folder_ok=False)
                stored["probes"][i][key] = _relative(real, roots.project)
                resolved["probes"][i][key] = str(real)  # probes open it as given
                changed = True
    return ConfinedSpec(stored=stored, resolved=resolved, changed=changed)
