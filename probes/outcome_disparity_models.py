"""Typed results of the ``outcome-disparity`` probe (a continuous outcome), and its example.

Differences are the group's mean minus the reference (control) group's, in outcome
units; ``adverse_*`` orient them so that positive is worse for the group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probes import examples
from probes.base import ProbeExample, ProbeInput, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultSummary


class OutcomeGroup(ResultGroup):
    """A group's mean outcome and, but for the reference, its comparisons to the reference."""

    n: float
    n_effective: float | None
    mean: float | None
    mean_ci: CI | None
    sd: float | None
    reference: bool
    insufficient_data: bool
    difference: float | None = None
    difference_ci: CI | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    ratio: float | None = None
    ratio_ci: CI | None = None
    standardized_mean_difference: float | None = None
    standardized_mean_difference_ci: CI | None = None
    adjusted_difference: float | None = None
    adjusted_difference_ci: CI | None = None
    adjusted_difference_p_value: float | None = None
    adjusted_difference_p_value_holm: float | None = None
    adverse_adjusted_difference: float | None = None
    adverse_adjusted_difference_ci: CI | None = None
    # race_proxy: the posterior-membership values beside the imputed ones
    difference_weighted: float | None = None
    standardized_mean_difference_weighted: float | None = None
    adjusted_difference_weighted: float | None = None


class OutcomeSummary(ResultSummary):
    """Rows used, the reference group and rule, the regression, the largest differences."""

    outcome: str
    controls: list[str]
    weight: str | None
    rows: int
    rows_missing_outcome: int
    rows_missing_controls: int
    rows_zero_weight: int
    rows_used: int
    reference_group: str | None
    reference_rule: str
    adverse: str
    controls_dropped_constant: list[str] | None = None
    reason: str | None = None  # why nothing was compared
    estimator: str | None = None
    r_squared_adjusted_model: float | None = None
    max_abs_standardized_mean_difference: float | None = None
    proxy: dict[str, Any] | None = None  # race_proxy: the imputations (method, draws)
    max_adverse_adjusted_difference: float | None = None


class OutcomeEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    reference_group: str | None


def _inputs() -> ProbeInput:
    data = examples.decisions()
    frame = data.frame.assign(apr=6.0 + data.frame["x1"] * 0.3 + data.frame["m"] * 0.2)
    return ProbeInput(frame=frame, protected=("sex", "race"), seed=3)


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    by_attr = {e.attribute: e for e in result.entries}
    sex = {g["group"]: g for g in by_attr["sex"].groups}
    ref = by_attr["sex"].summary["reference_group"]
    other = "f" if ref == "m" else "m"
    return {
        "an entry per protected attribute": set(by_attr) == {"sex", "race"},
        "the reference group is flagged": sex[ref]["reference"] and not sex[other]["reference"],
        "difference = mean - reference mean": abs(
            sex[other]["difference"] - (sex[other]["mean"] - sex[ref]["mean"])
        )
        < 1e-9,
        "m's APR is 0.2 higher (planted)": (sex["m"]["mean"] - sex["f"]["mean"]) > 0.1,
    }


EXAMPLE = ProbeExample(
    config={"kind": "outcome-disparity", "outcome": "apr", "controls": ["x2"]},
    inputs=_inputs,
    properties=_properties,
)
