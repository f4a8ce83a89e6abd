"""Typed results of the ``embedding-association`` probe (SEAT/WEAT), and its example.

One entry per association test; its one group is the test itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.result_models import CI, ResultGroup, ResultSummary


class AssociationGroup(ResultGroup):
    """The test: sizes, effect size with bootstrap CI, permutation p-value."""

    n: int
    n_targets: list[int]
    n_attributes: list[int]
    targets: list[str]
    attributes: list[str]
    effect_size: float | None
    effect_size_ci: CI | None
    test_statistic: float
    p_value: float | None
    permutations: int
    exact_p_value: bool


class AssociationSummary(ResultSummary):
    """The effect size and p-value again, with what the test is and how it ran."""

    effect_size: float | None
    p_value: float | None
    description: str
    source: str
    unit: str
    alternative: str


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    (entry,) = result.entries
    (test,) = entry.groups
    return {
        "one entry, for the test asked": entry.attribute == "weat3-names-pleasant",
        "its one group is the test": test["group"] == entry.attribute,
        "an effect size within [-2, 2]": abs(test["effect_size"]) <= 2,
        "a p-value": 0 <= test["p_value"] <= 1,
    }


EXAMPLE = ProbeExample(
    config={
        "kind": "embedding-association",
        "tests": ["weat3-names-pleasant"],
        "permutations": 200,
        "bootstrap": 50,
    },
    inputs=examples.no_dataset,
    properties=_properties,
    model="embedding",
)
