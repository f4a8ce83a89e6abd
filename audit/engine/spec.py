"""The audit spec (YAML or JSON), validated with pydantic.

Unknown keys are errors; every error names its field path, e.g.
``dataset.protected`` or ``probes[0].attributes``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from audit.engine.dbsource import QUERY_DOC, SOURCE_DOC, SOURCE_NAME, check_source_fields
from audit.engine.specio import load_spec_source
from audit.errors import SpecError, did_you_mean
from probes.models.prompt import PromptConfig

MAX_PROBES = 100  # a spec with more is refused (each probe costs a pass and a report section)

Domain = Literal["hiring", "lending", "general"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProxySpec(_Strict):
    """Race/ethnicity estimated from surname, first name and geography (BISG / BIFSG)."""

    method: Literal["bisg", "bifsg"] = Field(default="bisg", description="bisg or bifsg")
    surname: str = Field(description="surname column")
    first_name: str | None = Field(default=None, description="first-name column (bifsg only)")
    zcta: str | None = Field(default=None, description="5-digit ZIP/ZCTA column")
    tract: str | None = Field(default=None, description="11-digit census tract FIPS column")

    @model_validator(mode="after")
    def _one_geography(self) -> ProxySpec:
        if self.zcta and self.tract:
            raise ValueError("give zcta or tract, not both")
        if self.method == "bifsg" and not self.first_name:
            raise ValueError("first_name: required for method bifsg")
        if self.method == "bisg" and self.first_name:
            raise ValueError("first_name: only used by method bifsg")
        return self

    def columns(self) -> list[tuple[str, str]]:
        """(field, column) pairs the proxy reads."""
        named = [("surname", self.surname), ("first_name", self.first_name)]
        named += [("zcta", self.zcta), ("tract", self.tract)]
        return [(f, c) for f, c in named if c]


class DatasetSpec(_Strict):
    path: str | None = Field(
        default=None, description="CSV or Parquet file, relative to the spec file"
    )
    id: str | None = Field(default=None, description="a dataset stored by the API (replaces path)")
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="file format (default: from the file extension)"
    )
    label: str | None = Field(
        default=None, description="ground-truth column; enables TPR, FPR, precision, ..."
    )
    prediction: str | None = Field(
        default=None, description="predicted-label column (required for model.kind: predictions)"
    )
    score: str | None = Field(
        default=None, description="model score column: AUC, calibration, LL144 scoring rate"
    )
    protected: list[str] = Field(
        default_factory=list,
        description="protected-attribute columns, at least one when a probe compares groups "
        "of the dataset (demographic, dataset, outcome-disparity, counterfactual-tabular); "
        "model probes with their own groups (counterfactual-text) need none "
        "(missing values: `unknown` group)",
    )
    favorable_label: Any = Field(
        default=1,
        description="label value that counts as selected (1 == '1' == 1.0 == true), or a list "
        "of such values (any of them counts as selected); the label column must contain it "
        "(one of them, for a list)",
    )
    weight: str | None = Field(
        default=None,
        description="non-negative, finite weight column: every count metric is weighted "
        "(intervals from the Kish effective sample size; `n_effective` per group)",
    )
    reference: dict[str, Any] = Field(
        default_factory=dict,
        description="control group per protected column: impact ratios, p-values and findings "
        "against it (default: the highest-rate group)",
    )
    outcome: str | None = Field(
        default=None,
        description="continuous outcome column (APR, rate spread) for the outcome-disparity "
        "probe, when the probe names none",
    )
    proxy: ProxySpec | None = Field(
        default=None,
        description="race/ethnicity proxy (BISG/BIFSG): the demographic probe adds attribute "
        '"race_proxy", each row counted in every group with its posterior',
    )
    bins: dict[str, list[float]] = Field(
        default_factory=dict,
        description='numeric protected column cut at increasing edges: {age: [40]} gives "<40" '
        'and ">=40"; more edges give "[40,62)"',
    )
    privileged: dict[str, Any] = Field(
        default_factory=dict,
        description="privileged value per attribute, for aif360-style metrics (optional)",
    )
    strata: str | None = Field(default=None, description="column for conditional metrics (CDD)")
    unknown_label: str = Field(
        default="unknown", description="group name given to missing protected values"
    )
    sha256: str | None = Field(default=None, description="expected file hash (checked if given)")
    source: str | None = Field(default=None, pattern=SOURCE_NAME, description=SOURCE_DOC)
    query: str | None = Field(default=None, max_length=20_000, description=QUERY_DOC)
    window_start: str | None = Field(default=None, description="bound to :window_start")
    window_end: str | None = Field(default=None, description="bound to :window_end")

    @field_validator("protected")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("protected columns must be distinct")
        return v

    @field_validator("bins")
    @classmethod
    def _edges(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for col, edges in v.items():
            if not edges:
                raise ValueError(f"column {col!r}: give at least one edge")
            if not all(math.isfinite(e) for e in edges):
                raise ValueError(f"column {col!r}: edges must be finite numbers")
            if any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(f"column {col!r}: edges must be strictly increasing")
        return v

    @model_validator(mode="after")
    def _named_protected(self) -> DatasetSpec:
        for name in ("reference", "bins"):
            for col in getattr(self, name):
                proxied = name == "reference" and self.proxy is not None and col == "race_proxy"
                if self.protected and col not in self.protected and not proxied:
                    raise ValueError(
                        f"{name}: column {col!r} is not a protected column "
                        f"(dataset.protected: {', '.join(self.protected)})"
                    )
        return self

    @model_validator(mode="after")
    def _source_and_query(self) -> DatasetSpec:
        check_source_fields(self.source, self.query, has_file=bool(self.path or self.id))
        return self


class ModelSpec(_Strict):
    kind: Literal["predictions", "sklearn", "huggingface", "onnx"] = Field(
        default="predictions", description="where decisions come from"
    )
    path: str | None = None
    id: str | None = Field(
        default=None, description="a model stored by the API (POST /v1/models; replaces path)"
    )
    trusted: bool = Field(
        default=False, description="allow pickle/joblib files you created yourself (runs code)"
    )
    features: list[str] | None = Field(
        default=None, description="model input columns (default: the model's feature_names_in_)"
    )
    threshold: float = Field(default=0.5, description="score at or above which a case is selected")
    task: Literal["text-classification", "fill-mask", "embedding", "causal-lm"] | None = Field(
        default=None, description="Hugging Face task of the model folder"
    )
    positive_label: int | str | None = Field(
        default=None, description="class index or name whose probability is the score"
    )
    batch_size: int = Field(
        default=64, ge=1, description="texts per inference batch at most (halved on OOM)"
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="padded tokens per batch at most (long texts then go fewer to a batch)",
    )
    max_length: int = Field(
        default=256,
        ge=8,
        description="token limit per text (causal-lm: default the model's context window, at "
        "most 4096; a prompt's input is cut to fit and every cut is counted)",
    )
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1 (default: automatic)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="dtype the weights run in, as deployed: auto = the checkpoint's dtype, else "
        "fp32 (no autocast; recorded in results model.precision)",
    )
    prompt: PromptConfig | None = Field(
        default=None,
        description="causal-lm decision prompt: template (with {text}), favorable, unfavorable, "
        "chat_template (auto | always | never), system; the score is P(favorable) / "
        "(P(favorable) + P(unfavorable))",
    )

    @model_validator(mode="after")
    def _generative(self) -> ModelSpec:
        if self.id is not None and self.path is not None:
            raise ValueError("model.path: give model.id or model.path, not both")
        if self.precision != "auto" and self.kind != "huggingface":
            raise ValueError(f"model.precision: only for model.kind huggingface, not {self.kind!r}")
        if self.prompt is not None and self.task != "causal-lm":
            raise ValueError(f"model.prompt: only for model.task causal-lm, not {self.task!r}")
        return self


class PolicySpec(_Strict):
    """General policy settings; each probe's thresholds (``min_impact_ratio``,
    ``max_score_gap``, ...) are declared by the probe (:class:`probes.base.Check`) and
    accepted here by name (docs/spec.md lists them)."""

    model_config = ConfigDict(extra="allow")

    min_group_size: int = Field(
        default=30, ge=1, description="smaller groups get status insufficient_data"
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level")
    require_significance: bool = Field(
        default=False,
        description="fail only breaches that are also significant (p_value_adjusted < alpha)",
    )
    max_levels: int = Field(
        default=1_000,
        ge=2,
        description="most distinct values a protected column may have (more is an input "
        "error naming the column: an id column by mistake)",
    )
    max_groups: int = Field(
        default=10_000,
        ge=2,
        description="most observed groups an attribute or intersection may have (more is an "
        "input error naming the intersection)",
    )
    max_total_groups: int = Field(
        default=20_000,
        ge=2,
        description="most groups one probe may report over all its attributes and "
        "intersections (each is a row of results.json, of the findings and of the report; "
        "more is an input error naming the largest intersections)",
    )

    @model_validator(mode="after")
    def _thresholds(self) -> PolicySpec:
        from probes.base import policy_thresholds

        known = policy_thresholds()
        for key, value in list((self.model_extra or {}).items()):
            check = known.get(key)
            if check is None:
                names = [*type(self).model_fields, *known]
                raise ValueError(
                    f"policy.{key}: unknown policy setting{did_you_mean(key, names)}; "
                    f"valid: {', '.join(names)}"
                )
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"policy.{key}: must be a number, got {value!r}")
            bounds = [
                (check.gt, lambda v, b: v > b, "greater than"),
                (check.ge, lambda v, b: v >= b, "at least"),
                (check.le, lambda v, b: v <= b, "at most"),
            ]
            for bound, ok, words in bounds:
                if bound is not None and not ok(value, bound):
                    raise ValueError(f"policy.{key}: must be {words} {bound}, got {value}")
            self.__pydantic_extra__[key] = float(value)  # type: ignore[index]
        return self

    @model_serializer(mode="wrap")
    def _all_thresholds(self, handler: Any) -> dict[str, Any]:
        # every declared threshold appears (None: the probe's default), so a spec's
        # normalised form and hash do not depend on which thresholds it spelt out
        from probes.base import policy_thresholds

        out: dict[str, Any] = {name: None for name in policy_thresholds()}
        out.update(handler(self))
        return out


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
                errors.append((f"probes[{i}]." + _loc(e["loc"]), msg))
    return configs, errors


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
