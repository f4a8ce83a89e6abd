"""The sections of an audit spec: ``dataset``, ``model`` and ``policy`` (pydantic models).

:mod:`audit.engine.spec` assembles them into :class:`~audit.engine.spec.AuditSpec` and
turns validation errors into field paths. Unknown keys are errors in every section;
``policy`` also accepts each probe's declared thresholds by name.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from audit.engine.dbsource import QUERY_DOC, SOURCE_DOC, SOURCE_NAME, check_source_fields
from audit.errors import did_you_mean
from probes.models.prompt import PromptConfig


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
    sha256: str | None = Field(
        default=None, description="expected model fingerprint (checked if given)"
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
        description="most distinct values a protected or dataset.strata column may have "
        "(more is an input error naming the field and column: an id column by mistake)",
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
