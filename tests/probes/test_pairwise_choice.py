"""Pairwise-choice statistics on a rule-based chooser with known position and group effects.

The chooser implements the one method the probe calls on a causal LM
(``answer_logprobs``) with P(first) = 0.5 + position + preference x (first is a
man's name - second is a man's name) + a small jitter that depends on the résumé,
and gives 90% of its probability to the two answers. The trained-model acceptance
test is in test_generative_audit.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from probes.base import ProbeError, ProbeInput
from probes.counterfactual_text import CLUSTERED_TEST, PAIRED_TEST
from probes.models.prompt import AnswerScores
from probes.pairwise_choice import PairwiseChoiceConfig, PairwiseChoiceProbe
from probes.swap import NameLexicon, builtin_lexicon

LEX = NameLexicon.from_json(builtin_lexicon("names"))


class RuleChooser:
    kind = "test"
    sha256 = "0" * 64

    def __init__(self, position: float, prefers_men: float = 0.0) -> None:
        self.position, self.prefers_men = position, prefers_men
        self.prompts: list[Mapping[str, str]] = []

    def _male(self, text: str) -> float:
        found = LEX.find(text, "gender", pattern=LEX.detector("gender"))
        return float(any(LEX.level(n, "gender") == "male" for n in found))

    def answer_logprobs(
        self, template: str, slots: Sequence[Mapping[str, str]], answers: Sequence[str], **_: Any
    ) -> AnswerScores:
        assert list(answers) == [" A", " B"] and "{a}" in template
        self.prompts = list(slots)
        p = np.array(
            [
                0.5
                + self.position
                + self.prefers_men * (self._male(s["a"]) - self._male(s["b"]))
                + 0.02 * (len(s["a"].split()) % 3 - 1)  # depends on the résumé, not the name
                for s in slots
            ]
        ).clip(0.01, 0.99)
        logp = np.log(0.9 * np.stack([p, 1 - p], axis=1)) if len(p) else np.zeros((0, 2))
        return AnswerScores(logp, truncated=0)


def _run(model: Any, **config: Any) -> Any:
    cfg = PairwiseChoiceConfig.model_validate({"kind": "pairwise-choice", **config})
    data = ProbeInput(frame=pd.DataFrame(), protected=(), seed=0)
    return PairwiseChoiceProbe().run(data=data, model=model, config=cfg)


def _group(entry: Any, name: str) -> dict[str, Any]:
    return next(g for g in entry.groups if g["group"] == name)


def test_position_bias_alone_cancels_out_of_the_group_effect() -> None:
    (entry,) = _run(RuleChooser(position=0.3), names_per_group=6).entries
    female = _group(entry, "female")
    assert female["choice_rate"] == pytest.approx(0.5)
    assert female["choice_gap"] == pytest.approx(0.0, abs=1e-12)
    assert female["p_value"] == 1.0
    assert female["choice_rate_first"] == pytest.approx(0.8, abs=0.02)
    assert female["choice_rate_second"] == pytest.approx(0.2, abs=0.02)
    assert entry.summary["position_bias"] == pytest.approx(0.3, abs=0.02)
    lo, hi = entry.summary["position_bias_ci"]
    assert 0.2 < lo < 0.3 < hi < 0.4
    assert entry.summary["test"] == CLUSTERED_TEST  # templates x names share units
    assert entry.summary["answer_mass"] == pytest.approx(0.9)


def test_group_preference_is_found_and_kept_apart_from_position() -> None:
    model = RuleChooser(position=0.2, prefers_men=0.2)
    (entry,) = _run(model, names_per_group=6).entries
    female, male = _group(entry, "female"), _group(entry, "male")
    # P(A | woman first) = 0.5, P(A | man first) = 0.9 on average
    assert female["choice_gap"] == pytest.approx(-0.4, abs=0.02)
    assert female["choice_rate"] == pytest.approx(0.3, abs=0.01)
    assert male["choice_rate"] == pytest.approx(0.7, abs=0.01)
    assert female["choice_gap_ci"][1] < -0.3
    assert female["p_value"] < 1e-6
    assert entry.summary["position_bias"] == pytest.approx(0.2, abs=0.02)
    # every comparison is shown in both orders, and only those prompts
    pairs = {(s["a"], s["b"]) for s in model.prompts}
    assert all((b, a) in pairs for a, b in pairs)
    assert entry.summary["comparisons"] * 2 == len(model.prompts)


def test_every_group_against_the_reference_in_text_mode() -> None:
    rows = [f"{n} has {k} years as a nurse." for k, n in enumerate(["Emily", "Jamal", "Greg"])]
    cfg = {"kind": "pairwise-choice", "text_column": "cv", "attributes": ["race"]}
    data = ProbeInput(frame=pd.DataFrame({"cv": rows * 10}), protected=(), seed=0)
    model = RuleChooser(position=0.1, prefers_men=0.1)
    result = PairwiseChoiceProbe().run(
        data=data, model=model, config=PairwiseChoiceConfig.model_validate(cfg)
    )
    (entry,) = result.entries
    assert entry.reference_group == "white"  # type: ignore[attr-defined]
    assert {g["group"] for g in entry.groups} == {"black", "white", "hispanic", "asian"}
    assert entry.summary["test"] == PAIRED_TEST
    assert entry.summary["comparisons"] == 3 * entry.summary["base_texts"]
    white = _group(entry, "white")
    others = [g["choice_rate"] for g in entry.groups if g["group"] != "white"]
    assert white["choice_rate"] == pytest.approx(1 - np.mean(others))
    assert white["p_value"] is None and white["choice_gap"] is None
    assert entry.examples  # type: ignore[attr-defined]


def test_config_checks_slots_and_choices() -> None:
    with pytest.raises(ValidationError, match=r"both slots \{a\} and \{b\}"):
        PairwiseChoiceConfig.model_validate({"kind": "pairwise-choice", "template": "{a} only"})
    with pytest.raises(ValidationError, match="two different answers"):
        PairwiseChoiceConfig.model_validate({"kind": "pairwise-choice", "choices": [" A", " A"]})
    with pytest.raises(ValidationError, match="kind"):
        PairwiseChoiceConfig.model_validate({"kind": "counterfactual-text"})


def test_needs_a_causal_language_model() -> None:
    class Classifier:
        kind, sha256, threshold = "test", "0" * 64, 0.5

        def score(self, texts: list[str]) -> np.ndarray:
            return np.zeros(len(texts))

    with pytest.raises(ProbeError, match="needs a causal language model"):
        _run(Classifier())
    with pytest.raises(ProbeError, match="needs a causal language model"):
        _run(None)
