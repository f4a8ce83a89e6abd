"""Typed results of the ``counterfactual-text`` probe (name/term swaps), and its example.

Each group's variant of every base text is compared with the reference group's variant
of the same text (paired); with a prompted causal LM the groups and the summary also
carry the probability mass given to the answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultModel, ResultSummary


class SwapGroup(ResultGroup):
    """One group's variants: mean score, paired gap and flip rate vs the reference."""

    n: int
    mean_score: float | None
    mean_score_ci: CI | None
    score_gap: float | None
    score_gap_ci: CI | None
    flip_rate: float | None
    flip_rate_ci: CI | None
    p_value: float | None
    flip_p_value: float | None
    answer_mass: float | None = None  # a prompted causal LM


class SwapSummary(ResultSummary):
    """Largest gaps, how many base texts were used, where they came from, the test."""

    max_abs_score_gap: float | None
    max_flip_rate: float | None
    base_texts: int
    skipped_texts: int
    swap: str
    source: str
    test: str
    answer_mass: float | None = None
    answer_mass_min: float | None = None
    truncated_texts: int | None = None
    not_answering: bool | None = None
    warning: str | None = None


class SwapExample(ResultModel):
    """A base text whose score moved most, with its counterfactual variant."""

    group: str
    reference_group: str
    text: str
    counterfactual: str
    score: float
    counterfactual_score: float
    delta: float


class SwapEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    reference_group: str
    examples: list[SwapExample]


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    (entry,) = result.entries
    groups = {g["group"]: g for g in entry.groups}
    ref = entry.model_extra["reference_group"] if entry.model_extra else None
    return {
        "one entry, for gender": entry.attribute == "gender",
        "every base text has a pronoun to swap": entry.summary["base_texts"] == 12,
        "the reference group has no gap": groups[ref]["score_gap"] == 0.0,
        "flip rates are shares": all(0 <= g["flip_rate"] <= 1 for g in groups.values()),
    }


EXAMPLE = ProbeExample(
    config={"kind": "counterfactual-text", "text_column": "cv", "swap": "pronouns"},
    inputs=examples.texts,
    properties=_properties,
    model="text-scorer",
)
