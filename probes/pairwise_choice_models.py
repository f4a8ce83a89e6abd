"""Typed results of the ``pairwise-choice`` probe (a causal LM picks between two
candidates differing only in the swapped words, in both orders), and its example."""

from __future__ import annotations

from collections.abc import Mapping

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultModel, ResultSummary


class ChoiceGroup(ResultGroup):
    """How often the group's variant is chosen (order-balanced, and per order)."""

    n: int
    choice_rate: float | None
    choice_rate_ci: CI | None
    choice_rate_first: float | None
    choice_rate_second: float | None
    choice_gap: float | None
    choice_gap_ci: CI | None
    p_value: float | None
    answer_mass: float | None = None


class ChoiceSummary(ResultSummary):
    """Position bias, comparisons made, and the answer mass."""

    position_bias: float | None
    position_bias_ci: CI | None
    position_bias_p_value: float | None
    base_texts: int
    skipped_texts: int
    comparisons: int
    choices: list[str]
    swap: str
    source: str
    test: str
    answer_mass: float | None
    answer_mass_min: float | None
    truncated_texts: int
    not_answering: bool
    warning: str | None = None


class ChoiceExample(ResultModel):
    """A comparison whose choice moved most with the order."""

    group: str
    reference_group: str
    text: str
    reference_text: str
    p_first_when_group_first: float
    p_first_when_reference_first: float
    choice_gap: float


class ChoiceEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    reference_group: str
    examples: list[ChoiceExample]


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    (entry,) = result.entries
    return {
        "one entry, for gender": entry.attribute == "gender",
        "each base text compared with the reference": entry.summary["comparisons"]
        == entry.summary["base_texts"] * (len(entry.groups) - 1),
        "choice rates are shares": all(0 <= g["choice_rate"] <= 1 for g in entry.groups),
        "position bias within [-0.5, 0.5]": abs(entry.summary["position_bias"]) <= 0.5,
    }


EXAMPLE = ProbeExample(
    config={"kind": "pairwise-choice", "text_column": "cv", "swap": "pronouns"},
    inputs=examples.texts,
    properties=_properties,
    model="causal-lm",
)
