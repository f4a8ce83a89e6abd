"""Typed results of the ``demographic`` probe (docs/results.md, "Demographic entries"),
and its own example. Rates whose denominator is 0 are null; with ``dataset.weight``,
``n`` and ``selected`` are sums of weights (floats)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultModel, ResultSummary


class ExcludedGroup(ResultModel):
    """A group left out (of the summary, or of impact ratios with its ``reason``)."""

    group: str
    n: float
    share: float | None
    reason: str | None = None


class ClarifyMetrics(ResultModel):
    """SageMaker Clarify's post-training metrics of this group vs the rest."""

    DPPL: float | None = None
    DI: float | None = None
    DCA: float | None = None
    DCR: float | None = None
    RD: float | None = None
    SD: float | None = None
    DAR: float | None = None
    DRR: float | None = None
    AD: float | None = None
    TE: float | None = None


class DemographicGroup(ResultGroup):
    """One group (or intersection of levels): counts, rates, CIs, tests."""

    levels: dict[str, str]
    n: float
    share: float | None
    selected: float
    selection_rate: float | None
    selection_rate_ci: CI | None
    impact_ratio: float | None
    impact_ratio_ci: CI | None
    p_value: float | None
    p_value_adjusted: float | None
    selection_rate_sd: float | None
    insufficient_data: bool
    n_effective: float | None = None
    impact_ratio_excluded: str | None = None
    impact_ratio_mi: float | None = None
    impact_ratio_weighted: float | None = None  # race_proxy: probability-weighted ratio
    # with a label
    tpr: float | None = None
    fpr: float | None = None
    fnr: float | None = None
    tnr: float | None = None
    precision: float | None = None
    npv: float | None = None
    accuracy: float | None = None
    base_rate: float | None = None
    tpr_ci: CI | None = None
    fpr_ci: CI | None = None
    clarify: ClarifyMetrics | None = None
    cddpl: float | None = None
    # with bootstrap: N
    selection_rate_ci_bootstrap: CI | None = None
    impact_ratio_ci_bootstrap: CI | None = None
    # with a score
    mean_score: float | None = None
    scoring_rate: float | None = None
    auc: float | None = None
    calibration_error: float | None = None
    scoring_impact_ratio: float | None = None


class PrivilegedMetrics(ResultModel):
    """aif360's metrics against a declared privileged group (unprivileged: the rest)."""

    privileged_group: str
    disparate_impact: float | None = None
    statistical_parity_difference: float | None = None
    equal_opportunity_difference: float | None = None
    average_odds_difference: float | None = None
    average_abs_odds_difference: float | None = None
    error_rate_difference: float | None = None


class DemographicSummary(ResultSummary):
    """fairlearn's between-group differences and ratios, and the optional extras."""

    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    selection_rate_homogeneity_p_value: float | None
    equalized_odds_difference: float | None
    equalized_odds_ratio: float | None
    equal_opportunity_difference: float | None
    equal_opportunity_ratio: float | None
    true_positive_rate_difference: float | None = None
    false_positive_rate_difference: float | None = None
    accuracy_difference: float | None = None
    accuracy_ratio: float | None = None
    generalized_entropy_index: float | None = None
    demographic_parity_difference_ci_bootstrap: CI | None = None
    bootstrap_replicates: int | None = None
    privileged: PrivilegedMetrics | None = None
    median_score: float | None = None
    score_ks_max: float | None = None
    proxy: dict[str, Any] | None = None  # race_proxy: coverage, imputations, threshold


class DemographicEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    attributes: list[str]
    reference_group: str
    excluded_groups: list[ExcludedGroup]
    impact_ratio_excluded: list[ExcludedGroup]
    min_group_size: int


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    by_attr = {e.attribute: e for e in result.entries}
    sex = {g["group"]: g for g in by_attr["sex"].groups}
    return {
        "an entry per attribute and one for sex&race": set(by_attr) == {"sex", "race", "sex&race"},
        "selection_rate = selected / n": all(
            abs(g["selection_rate"] - g["selected"] / g["n"]) < 1e-12 for g in sex.values()
        ),
        "m (selected at 0.6) is the reference, f's impact ratio below 0.8": sex["m"]["impact_ratio"]
        == 1.0
        and sex["f"]["impact_ratio"] < 0.8,
        "error rates with a label": all(g["tpr"] is not None for g in sex.values()),
    }


EXAMPLE = ProbeExample(
    config={"kind": "demographic", "intersectional": True},
    inputs=examples.decisions,
    properties=_properties,
)
