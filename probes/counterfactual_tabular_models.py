"""Typed results of the ``counterfactual-tabular`` probe (flip test), and its own example.

With a model: every row is re-predicted with the attribute set to each value, all else
fixed (``mode: counterfactual``). Without one: SageMaker Clarify's FT, each group
against its nearest neighbours in the other groups (``mode: knn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probes import examples
from probes.base import ProbeExample, ProbeInput, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultModel, ResultSummary


class FlipGroup(ResultGroup):
    """One value of the attribute: the scores and decisions with every row set to it."""

    n: int
    insufficient_data: bool
    n_observed: int | None = None
    mean_score: float | None = None
    mean_score_ci: CI | None = None
    score_gap: float | None = None
    score_gap_ci: CI | None = None
    flip_rate: float | None = None
    flip_rate_ci: CI | None = None
    flips_to_selected: int | None = None
    flips_to_not_selected: int | None = None
    selection_rate: float | None = None
    selection_rate_ci: CI | None = None
    p_value: float | None = None
    flip_p_value: float | None = None
    score_p_value: float | None = None
    FT: float | None = None  # Clarify's flip test (knn mode)  # noqa: N815
    neighbors: int | None = None


class FlipSummary(ResultSummary):
    """How the test ran, and its largest gaps."""

    mode: str | None = None  # counterfactual | knn
    reason: str | None = None  # why nothing was tested
    reference_rule: str | None = None
    score_source: str | None = None
    flip_rate_any: float | None = None
    max_abs_score_gap: float | None = None
    max_flip_rate: float | None = None
    p_value_test: str | None = None
    attribute_in_features: bool | None = None
    not_applicable: str | None = None
    method: str | None = None
    neighbors: int | None = None
    features: list[str] | None = None
    rows_evaluated: int | None = None
    rows_total: int | None = None
    sampled: bool | None = None


class FlipPair(ResultModel):
    """Rows observed in ``group`` set to ``counterfactual``."""

    group: str
    counterfactual: str
    n: int
    flip_rate: float | None
    flip_rate_ci: CI | None
    mean_score_change: float | None
    mean_score_change_ci: CI | None
    p_value: float | None


class FlipExample(ResultModel):
    """A row whose score moved most, with both scores and decisions."""

    group: str
    counterfactual: str
    input: dict[str, Any]
    score: float
    counterfactual_score: float
    delta: float
    selected: bool
    counterfactual_selected: bool


class FlipEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    reference_group: str | None
    pairs: list[FlipPair]
    examples: list[FlipExample]
    values: list[str]


def _inputs() -> ProbeInput:
    return ProbeInput(frame=examples.applicants(200), protected=("sex",), seed=3)


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    (entry,) = result.entries
    groups = {g["group"]: g for g in entry.groups}
    ref = entry.model_extra["reference_group"] if entry.model_extra else None
    return {
        "one entry, for sex": entry.attribute == "sex" and set(groups) == {"f", "m"},
        "the reference group has no gap": groups[ref]["score_gap"] == 0.0,
        # the example model reads x1 and m, not sex: setting sex changes no decision
        "no flips": all(g["flip_rate"] == 0.0 for g in groups.values()),
        "the test does not apply": "not_applicable" in entry.summary,
    }


EXAMPLE = ProbeExample(
    config={"kind": "counterfactual-tabular", "attribute": "sex"},
    inputs=_inputs,
    properties=_properties,
    model="sklearn",
)
