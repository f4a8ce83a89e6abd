"""Typed results of the ``lda-search`` probe (docs/lda.md), and its own example.

The entry's ``groups`` are the rows the policy judges: the model in use and the best
alternative; ``baseline``, ``alternatives``, ``best``, ``frontier`` and ``drivers`` hold
the search itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultModel, ResultSummary


class LdaGroup(ResultGroup):
    """The model in use, or the judged alternative (with the ``lda_*`` fields)."""

    n: int
    performance: float | None
    performance_ci: CI | None
    min_impact_ratio: float | None
    min_impact_ratio_ci: CI | None
    lda_min_impact_ratio: float | None = None
    lda_min_impact_ratio_ci: CI | None = None
    baseline_min_impact_ratio: float | None = None
    lda_significant: bool | None = None


class LdaSummary(ResultSummary):
    """Whether an alternative was found and needed, the budget, what the search tried."""

    lda_found: bool
    lda_needed: bool
    metric: str
    max_performance_loss: float
    target_impact_ratio: float | None
    baseline_min_impact_ratio: float | None
    best: str | None
    best_min_impact_ratio: float | None
    best_performance_loss: float | None
    candidates_tried: int
    recipes_fitted: int
    recipes_skipped_by_budget: int
    recipes_failed: int
    budget_exhausted: bool
    time_budget_s: float | None
    best_model_file: str | None
    training: str | None = None  # "file" (probes[].train) or "split" (holdout_size)
    training_rows: int | None = None
    holdout_rows: int | None = None
    proxy_groups: bool | None = None  # attribute race_proxy: groups by posterior
    # dataset.weight in training: "none", "all", "except_reductions" (non-integer weights)
    training_weights: str | None = None


class GroupRate(ResultModel):
    """A group's selection rate under one model, and whether it is compared."""

    selection_rate: float | None
    selection_rate_ci: CI | None
    compared: bool


class LdaRecord(ResultModel):
    """A model evaluated on the holdout: the model in use, or an alternative."""

    name: str
    performance: float | None
    performance_ci: CI | None
    accuracy: float | None
    min_impact_ratio: float | None
    min_impact_ratio_ci: CI | None
    selection_rate: float | None
    groups: dict[str, GroupRate] | None = None  # the model in use and the best
    family: str | None = None
    threshold: float | None = None
    performance_loss: float | None = None
    min_impact_ratio_gain_ci: CI | None = None
    dropped: list[str] | None = None
    params: dict[str, Any] | None = None


class Driver(ResultModel):
    """The gain in lowest impact ratio from neutralizing one feature."""

    feature: str
    min_impact_ratio_gain: float
    min_impact_ratio_gain_ci: CI | None
    performance_loss: float | None


class LdaEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    baseline: LdaRecord
    alternatives: list[LdaRecord]
    best: LdaRecord | None
    frontier: list[str]
    drivers: list[Driver]
    failed: list[dict[str, str]]


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    (entry,) = result.entries
    extra = entry.model_extra or {}
    names = [a["name"] for a in extra["alternatives"]]
    return {
        "one entry, for sex": entry.attribute == "sex",
        "alternatives were tried": len(names) == entry.summary["candidates_tried"] > 0,
        "the model in use is the baseline": extra["baseline"]["name"] == "model in use",
        "the frontier names evaluated models": set(extra["frontier"]) <= {*names, "model in use"},
        "judged rows: the model in use and the best": 1 <= len(entry.groups) <= 2,
    }


EXAMPLE = ProbeExample(
    config={
        "kind": "lda-search",
        "attribute": "sex",
        "train": "train.csv",
        "n_jobs": 1,
        "reductions": False,
        "bootstrap": 50,
    },
    inputs=examples.holdout_with_training_file,
    properties=_properties,
    model="sklearn",
)
