"""The audit spec (YAML or JSON), validated with pydantic.

Unknown keys are errors; every error names its field path, e.g.
``dataset.protected`` or ``probes[0].attributes``. The sections ``dataset``,
``model`` and ``policy`` are defined in :mod:`audit.engine.specsections` (and
importable from here); this module puts them together, asks each probe about its
own config, and turns every validation error into a field path.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from audit.engine.specio import load_spec_source
from audit.engine.specsections import (
    DatasetSpec,
    ModelSpec,
    PolicySpec,
    ProxySpec,
    _Strict,
)
from audit.errors import SpecError, did_you_mean
from probes.models.prompt import PromptConfig

__all__ = [
    "MAX_PROBES",
    "AuditSpec",
    "DatasetSpec",
    "Domain",
    "ModelSpec",
    "PolicySpec",
    "ProxySpec",
    "load_spec_source",
    "needs_dataset",
    "needs_protected",
    "parse_spec",
    "validate_probe_configs",
]

MAX_PROBES = 100  # a spec with more is refused (each probe costs a pass and a report section)

Domain = Literal["hiring", "lending", "general"]


def _default_probes() -> list[dict[str, Any]]:
    from probes.base import default_probes

    return default_probes()


def needs_dataset(probe: dict[str, Any]) -> bool:
    """Whether a probe config reads the dataset (the probe says; unknown kinds: yes)."""
    return _probe_says(probe, "uses_dataset")


def needs_protected(probe: dict[str, Any]) -> bool:
    """Whether a probe config compares groups of protected columns (unknown kinds: yes)."""
    return _probe_says(probe, "uses_protected")


def _probe_says(probe: dict[str, Any], question: str) -> bool:
    from probes.base import ProbeError, get_probe

    kind = probe.get("kind")
    if not isinstance(kind, str):
        return True
    try:
        return bool(getattr(get_probe(kind), question)(probe))
    except ProbeError:
        return True


class AuditSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, description="audit name")
    domain: Domain = Field(default="general", description="picks the default policy")
    description: str | None = Field(default=None, description="free text for the report")
    dataset: DatasetSpec = Field(
        default_factory=DatasetSpec,
        description="the audited data (see below); optional only when every probe brings "
        "its own inputs (templates, pair sets)",
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="the model (see below)")
    probes: list[dict[str, Any]] = Field(
        default_factory=_default_probes,
        max_length=MAX_PROBES,
        description=f"probes to run, each with a kind (see below); at most {MAX_PROBES}",
    )
    policy: PolicySpec = Field(
        default_factory=PolicySpec, description="thresholds (default: the domain's policy)"
    )
    seed: int = Field(default=0, description="seed of every random step (bootstrap, sampling)")

    @model_validator(mode="after")
    def _dataset_needed(self) -> AuditSpec:
        has_data = bool(self.dataset.path or self.dataset.id or self.dataset.source)
        if has_data and not self.dataset.protected and self.dataset.proxy is None:
            for i, probe in enumerate(self.probes):
                if needs_protected(probe):
                    raise ValueError(
                        f"dataset.protected: at least one protected column is required by "
                        f"probes[{i}] (kind {probe.get('kind')!r}), or dataset.proxy; model "
                        "probes with their own groups (counterfactual-text, ...) need none"
                    )
        if not has_data:
            for i, probe in enumerate(self.probes):
                if needs_dataset(probe):
                    raise ValueError(
                        f"dataset: required by probes[{i}] (kind {probe.get('kind')!r}): set "
                        "dataset.path (or dataset.id via the API); only template and "
                        "pair-set probes run without a dataset"
                    )
        return self

    def sha256(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()


_FIELD_PATH = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*|\[\d+\])*")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The valid keys of the spec section at ``loc`` (for "did you mean")."""
    section: dict[tuple[str, ...], type[BaseModel]] = {
        (): AuditSpec,
        ("dataset",): DatasetSpec,
        ("model",): ModelSpec,
        ("model", "prompt"): PromptConfig,
    }
    model = section.get(tuple(str(p) for p in loc))
    return list(model.model_fields) if model is not None else []


def _error(e: Any) -> tuple[str, str]:
    """(field path, message); model-level errors carry their path in the message."""
    msg = str(e["msg"]).removeprefix("Value error, ")
    path = _loc(e["loc"])
    if e.get("type") == "extra_forbidden" and e["loc"]:
        known = _known_keys(tuple(e["loc"][:-1]))
        hint = did_you_mean(e["loc"][-1], known)
        msg = f"unknown key{hint}" + (f"; valid keys: {', '.join(known)}" if known else "")
    if ": " in msg:
        head, rest = msg.split(": ", 1)
        nested = head.startswith(f"{path}.") or head.startswith(f"{path}[")
        if not path or (nested and _FIELD_PATH.fullmatch(head)):
            path, msg = head, rest
    return path, msg


def _probe_configs(probes: Any) -> tuple[list[Any], list[tuple[str, str]]]:
    """Each ``probes[i]`` validated against its probe's config model: configs and errors."""
    from probes.base import ProbeError, get_probe

    errors: list[tuple[str, str]] = []
    configs: list[Any] = []
    for i, raw in enumerate(probes if isinstance(probes, list) else []):
        if not isinstance(raw, dict):
            continue  # the spec model reports it
        kind = raw.get("kind")
        if not isinstance(kind, str):
            errors.append((f"probes[{i}].kind", "required: the probe kind"))
            continue
        try:
            cls = get_probe(kind)
        except ProbeError as exc:
            errors.append((f"probes[{i}].kind", str(exc)))
            continue
        try:
            configs.append(cls.config_model.model_validate(raw))
        except ValidationError as exc:
            for e in exc.errors():
                msg = e["msg"]
                if e.get("type") == "extra_forbidden" and e["loc"]:
                    known = list(cls.config_model.model_fields)
                    msg = (
                        f"unknown key for probe {kind!r}{did_you_mean(str(e['loc'][-1]), known)}; "
                        f"valid keys: {', '.join(known)}"
                    )
                errors.append(_probe_error(i, _loc(e["loc"]), str(msg)))
    return configs, errors


def _probe_error(i: int, path: str, msg: str) -> tuple[str, str]:
    """(field, message) of probe ``i``'s config error: a check over several keys (empty
    ``path``) names its key as ``probes[].<key>: ...`` in the message: that key, numbered."""
    msg = msg.removeprefix("Value error, ")
    head, sep, rest = msg.partition(": ")
    if not path and sep and head.startswith("probes[].") and _FIELD_PATH.fullmatch(head[9:]):
        return f"probes[{i}].{head[9:]}", rest
    return (f"probes[{i}].{path}" if path else f"probes[{i}]"), msg


def validate_probe_configs(spec: AuditSpec) -> list[Any]:
    """Validate each ``probes[i]`` against its probe's pydantic config model."""
    configs, errors = _probe_configs(spec.probes)
    if errors:
        raise SpecError(errors)
    return configs


def parse_spec(source: dict[str, Any] | str | Path) -> tuple[AuditSpec, Path]:
    """Parse and validate a spec (dict, or path to YAML/JSON); returns it and its base dir.

    Every error is reported at once (:class:`audit.errors.SpecError` lists them).
    """
    data, base = load_spec_source(source)
    try:
        spec = AuditSpec.model_validate(data)
    except ValidationError as exc:
        # every error at once: the spec's, and each probe config's
        errors = [_error(e) for e in exc.errors()]
        errors += [e for e in _probe_configs(data.get("probes"))[1] if e not in errors]
        raise SpecError(errors) from None
    validate_probe_configs(spec)
    return spec, base
