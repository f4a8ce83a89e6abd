"""Typed results of the ``mlm-stereotype`` probe (CrowS-Pairs method), and its example.

Groups are bias types; the stereotype score is the share of pairs whose stereotypical
sentence the model finds more likely (0.5: no preference).
"""

from __future__ import annotations

from collections.abc import Mapping

from probes import examples
from probes.base import ProbeExample, ProbeResult
from probes.result_models import CI, EntryFields, ResultGroup, ResultModel, ResultSummary


class StereotypeGroup(ResultGroup):
    """One bias type: pairs scored, stereotype score with CI and binomial p-value."""

    n: int
    stereotype_more_likely: int
    ties: int
    stereotype_score: float | None
    stereotype_score_ci: CI | None
    p_value: float | None
    mean_log_likelihood_difference: float | None


class StereotypeSummary(ResultSummary):
    """Every pair together, and how the pairs were scored."""

    stereotype_score: float | None
    stereotype_score_ci: CI | None
    p_value: float | None
    n: int
    ties: int
    scoring: str
    pairs: str


class StereotypeExample(ResultModel):
    """A pair the model prefers most strongly in the stereotypical direction."""

    group: str
    stereotype: str
    anti_stereotype: str
    stereotype_log_likelihood: float
    anti_stereotype_log_likelihood: float
    delta: float


class StereotypeEntryFields(EntryFields):
    """Entry keys besides groups and summary."""

    examples: list[StereotypeExample]


def _properties(result: ProbeResult) -> Mapping[str, bool]:
    (entry,) = result.entries
    (gender,) = entry.groups
    return {
        "one entry by bias type": entry.attribute == "bias_type",
        "only the gender pairs": gender["group"] == "gender" and entry.summary["n"] == gender["n"],
        "score = stereotype more likely / n": gender["stereotype_score"]
        == gender["stereotype_more_likely"] / gender["n"],
    }


EXAMPLE = ProbeExample(
    config={"kind": "mlm-stereotype", "bias_types": ["gender"]},
    inputs=examples.no_dataset,
    properties=_properties,
    model="fill-mask",
)
