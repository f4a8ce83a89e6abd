"""Prompted decisions of a causal language model: the prompt block and the answer scores.

A screener built on a generative model is asked a question ("Should this
candidate advance to interview? Answer:") and answers with a word. We never
generate: we read the model's probability of each allowed answer, a summed
log-probability over the answer's tokens, so the decision score is
deterministic and cheap:

    score = P(favorable) / (P(favorable) + P(unfavorable))

and ``answer_mass`` = P(favorable) + P(unfavorable) says how much of the model's
probability the allowed answers get at all. A model that puts 2 % on both is
not answering the question; its normalised score is not its decision.

Pure module (pydantic, numpy): no torch, so the spec can validate a prompt
without importing a model back end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from probes.base import Check

__all__ = [
    "ANSWER_MASS_CHECK",
    "MIN_ANSWER_MASS",
    "AnswerScores",
    "PromptConfig",
    "add_answer_mass",
    "answer_summary",
    "fill_template",
    "prompted_scores",
]

MIN_ANSWER_MASS = 0.5
"""Default ``policy.min_answer_mass``: below it, the model is not answering the prompt."""

MSG_TEXT_SLOT = "model.prompt.template: must contain the slot {text} (where the input goes)"
MSG_SAME_ANSWERS = "model.prompt: favorable and unfavorable must differ, both are {answer!r}"


def fill_template(template: str, slots: dict[str, str]) -> str:
    """``template`` with every ``{name}`` slot replaced (plain replacement, no ``str.format``).

    Other braces (JSON examples in a prompt, ``{{``) are left exactly as written.

    >>> fill_template("Resume: {text}\\nJSON {\\"a\\": 1}", {"text": "Ada"})
    'Resume: Ada\\nJSON {"a": 1}'
    """
    out = template
    for name, value in slots.items():
        out = out.replace("{" + name + "}", value)
    return out


class PromptConfig(BaseModel):
    """``model.prompt``: how a causal LM is asked for a decision (``model.task: causal-lm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str = Field(
        description="prompt with the slot {text} where each input goes, ending right before "
        "the answer (e.g. '...Answer:')"
    )
    favorable: str = Field(
        default=" Yes",
        min_length=1,
        description="the favorable answer, exactly as the model would continue the prompt "
        "(leading space included for GPT-style tokenizers)",
    )
    unfavorable: str = Field(default=" No", min_length=1, description="the unfavorable answer")
    chat_template: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="wrap the filled template as a user message with the tokenizer's chat "
        "template: auto = when the tokenizer has one; always = required (error without "
        "one); never = plain text",
    )
    system: str | None = Field(
        default=None, description="system message (only with a chat template)"
    )

    @model_validator(mode="after")
    def _check(self) -> PromptConfig:
        if "{text}" not in self.template:
            raise ValueError(MSG_TEXT_SLOT)
        if self.favorable == self.unfavorable:
            raise ValueError(MSG_SAME_ANSWERS.format(answer=self.favorable))
        return self

    @property
    def answers(self) -> tuple[str, str]:
        """(favorable, unfavorable): column order of :class:`AnswerScores`."""
        return (self.favorable, self.unfavorable)


@dataclass(frozen=True)
class AnswerScores:
    """Summed log-probabilities of each allowed answer after each prompt.

    ``logp[i, j]`` = log P(answer j | prompt i), the sum over the answer's tokens;
    ``truncated`` counts prompts whose input was cut to fit ``model.max_length``.
    """

    logp: np.ndarray  # (prompts, answers), float64
    truncated: int = 0

    @property
    def mass(self) -> np.ndarray:
        """P(any allowed answer) per prompt: the sum of the answers' probabilities."""
        return np.exp(self.logp).sum(axis=1) if self.logp.size else np.zeros(len(self.logp))

    def share(self, j: int = 0) -> np.ndarray:
        """P(answer j) / P(any allowed answer) per prompt (computed in log space)."""
        if not self.logp.size:
            return np.zeros(len(self.logp))
        top = self.logp.max(axis=1, keepdims=True)
        w = np.exp(self.logp - top)
        return np.asarray(w[:, j] / w.sum(axis=1), dtype=np.float64)


# --------------------------------------------------------------------------- probe side

ANSWER_MASS_CHECK = Check(
    "answer_mass",
    "min_answer_mass",
    MIN_ANSWER_MASS,
    "min",
    "least mean probability a prompted causal LM must give the allowed answers (below it "
    "the model is not answering and its scores are not its decisions)",
    p_value=None,
    min_n=1,
    skip_missing=True,
    ge=0,
    le=1,
)
"""The policy check of every probe that scores prompted answers (one finding per group)."""

MSG_NOT_ANSWERING = (
    "the model is not answering the prompt: the allowed answers get {mass:.1%} of its "
    "probability on average (at least {floor:.0%} expected), so its normalised scores are "
    "not its decisions; check model.prompt (template, answers, chat_template)"
)


def prompted_scores(
    model: Any,
    texts: list[str],
    *,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> AnswerScores | None:
    """The answer scores of a prompted causal LM for ``texts``; None for any other model.

    A probe that scores texts calls this first: with a prompted model it gets the
    answers' log-probabilities (score, ``answer_mass``, truncation count) in the
    same single pass that gives the scores.
    """
    if getattr(model, "prompt", None) is None or not hasattr(model, "answer_scores"):
        return None
    scores = model.answer_scores(texts, progress=progress, should_cancel=should_cancel)
    return scores if isinstance(scores, AnswerScores) else None


def add_answer_mass(groups: list[dict[str, Any]], mass: np.ndarray) -> None:
    """Give each group (column j of ``mass``: units x groups) its mean ``answer_mass``."""
    for j, row in enumerate(groups):
        col = mass[:, j] if mass.ndim == 2 and mass.shape[0] else np.zeros(0)
        row["answer_mass"] = float(col.mean()) if col.size else None


def answer_summary(mass: np.ndarray, truncated: int) -> dict[str, Any]:
    """Entry ``summary`` fields: mean and lowest answer mass, truncations, a warning."""
    flat = np.asarray(mass, dtype=float).reshape(-1)
    mean = float(flat.mean()) if flat.size else None
    out: dict[str, Any] = {
        "answer_mass": mean,
        "answer_mass_min": float(flat.min()) if flat.size else None,
        "truncated_texts": int(truncated),
        "not_answering": mean is not None and mean < MIN_ANSWER_MASS,
    }
    if out["not_answering"]:
        out["warning"] = MSG_NOT_ANSWERING.format(mass=mean, floor=MIN_ANSWER_MASS)
    return out
