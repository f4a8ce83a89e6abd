"""Typed results of the ``dataset`` probe (pre-training label bias), and its own example.

Each group (facet) is compared with the rest of the data; SageMaker Clarify's
pre-training metrics keep their abbreviations (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.demographic_models import ExcludedGroup
from probes.result_models import CI, EntryFields, ResultGroup, ResultSummary


class DatasetGroup(ResultGroup):
    """One group's labels: positives, rate with CI, test vs the rest, Clarify metrics."""

    levels: dict[str, str]
    n: int
    share: float | None
    positives: int
    positive_rate: float | None
    positive_rate_ci: CI
    p_value: float | None
    p_value_adjusted: float | None
    insufficient_data: bool
    CI: float | None  # class imbalance  # noqa: N815 - Clarify's names
    DPL: float | None  # noqa: N815
    KL: float | None  # noqa: N815
    JS: float | None  # noqa: N815
    LP: float | None  # noqa: N815
    TVD: float | None  # noqa: N815
    KS: float | None  # noqa: N815
    CDDL: float | None  # with dataset.strata  # noqa: N815


class DatasetSummary(ResultSummary):
    """Positive rates overall and between groups; the largest value of each metric."""

    rows: int
    strata: str | None
    positive_rate: float | None = None
    summary_over: str | None = None
    positive_rate_difference: float | None = None
    positive_rate_ratio: float | None = None
    max_abs_CI: float | None = None  # noqa: N815
    max_abs_CI_group: str | None = None  # noqa: N815
    max_abs_DPL: float | None = None  # noqa: N815
    max_abs_DPL_group: str | None = None  # noqa: N815
    max_KL: float | None = None  # noqa: N815
    max_KL_group: str | None = None  # noqa: N815
    max_JS: float | None = None  # noqa: N815
    max_JS_group: str | None = None  # noqa: N815
    max_LP: float | None = None  # noqa: N815
    max_LP_group: str | None = None  # noqa: N815
    max_TVD: float | None = None  # noqa: N815
    max_TVD_group: str | None = None  # noqa: N815
    max_KS: float | None = None  # noqa: N815
    max_KS_group: str | None = None  # noqa: N815
    max_abs_CDDL: float | None = None  # noqa: N815
    max_abs_CDDL_group: str | None = None  # noqa: N815


class DatasetEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    attributes: list[str]
    excluded_groups: list[ExcludedGroup]
    min_group_size: int


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    by_attr = {e.attribute: e for e in result.entries}
    sex = by_attr["sex"]
    return {
        "an entry per protected attribute": set(by_attr) == {"sex", "race"},
        "positive_rate = positives / n": all(
            abs(g["positive_rate"] - g["positives"] / g["n"]) < 1e-12 for g in sex.groups
        ),
        "groups cover every row": sum(g["n"] for g in sex.groups) == sex.summary["rows"],
        "DPL of two groups is opposite": abs(sex.groups[0]["DPL"] + sex.groups[1]["DPL"]) < 1e-12,
    }


EXAMPLE = ProbeExample(
    config={"kind": "dataset"}, inputs=examples.decisions, properties=_properties
)
