"""The audit spec (YAML or JSON), validated with pydantic.

Unknown keys are errors; every error names its field path, e.g.
``dataset.protected`` or ``probes[0].attributes``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from audit.errors import SpecError

Domain = Literal["hiring", "lending", "general"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    path: str | None = None
    id: str | None = Field(default=None, description="a dataset stored by the API (replaces path)")
    format: Literal["csv", "parquet"] | None = None
    label: str | None = None
    prediction: str | None = None
    score: str | None = None
    protected: list[str] = Field(min_length=1)
    favorable_label: Any = 1
    privileged: dict[str, Any] = Field(
        default_factory=dict,
        description="privileged value per attribute, for aif360-style metrics (optional)",
    )
    strata: str | None = Field(default=None, description="column for conditional metrics (CDD)")
    unknown_label: str = "unknown"
    sha256: str | None = Field(default=None, description="expected file hash (checked if given)")

    @field_validator("protected")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("protected columns must be distinct")
        return v


class ModelSpec(_Strict):
    kind: Literal["predictions", "sklearn", "huggingface", "onnx"] = "predictions"
    path: str | None = None
    trusted: bool = False
    features: list[str] | None = None
    threshold: float = 0.5
    task: Literal["text-classification", "fill-mask", "embedding", "causal-lm"] | None = None
    positive_label: int | str | None = None
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=256, ge=8)
    device: str | None = None


class PolicySpec(_Strict):
    min_impact_ratio: float | None = Field(default=None, gt=0, le=1)
    max_score_gap: float | None = Field(default=None, ge=0)
    max_flip_rate: float | None = Field(default=None, ge=0, le=1)
    max_stereotype_score: float | None = Field(default=None, ge=0.5, le=1)
    max_effect_size: float | None = Field(default=None, ge=0)
    min_group_size: int = Field(default=30, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    require_significance: bool = False


class AuditSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    domain: Domain = "general"
    description: str | None = None
    dataset: DatasetSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    probes: list[dict[str, Any]] = Field(default_factory=lambda: [{"kind": "demographic"}])
    policy: PolicySpec = Field(default_factory=PolicySpec)
    seed: int = 0

    def sha256(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validate_probe_configs(spec: AuditSpec) -> list[Any]:
    """Validate each ``probes[i]`` against its probe's pydantic config model."""
    from probes.base import ProbeError, get_probe

    errors: list[tuple[str, str]] = []
    configs: list[Any] = []
    for i, raw in enumerate(spec.probes):
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
                errors.append((f"probes[{i}]." + _loc(e["loc"]), e["msg"]))
    if errors:
        raise SpecError(errors)
    return configs


def parse_spec(source: dict[str, Any] | str | Path) -> tuple[AuditSpec, Path]:
    """Parse and validate a spec (dict, or path to YAML/JSON); returns it and its base dir."""
    base = Path.cwd()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise SpecError([("spec", f"file not found: {path}")])
        text = path.read_text(encoding="utf-8")
        base = path.resolve().parent
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise SpecError([("spec", f"{path} is not valid YAML/JSON{where}: {exc}")]) from None
    else:
        data = source
    if not isinstance(data, dict):
        raise SpecError([("spec", "the spec must be a mapping (YAML/JSON object)")])
    try:
        spec = AuditSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([(_loc(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    validate_probe_configs(spec)
    return spec, base
