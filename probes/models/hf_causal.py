"""Causal language models: log-likelihood, and decisions read from answer probabilities.

With a ``model.prompt`` block the adapter is a screener: each input is put into
the prompt template, wrapped in the tokenizer's chat template when there is one
(``prompt.chat_template``), and the decision score is
P(favorable) / (P(favorable) + P(unfavorable)) (:mod:`probes.models.prompt`), so
every probe that scores texts works on it unchanged. Probes that build their own
prompts (pairwise-choice) call :meth:`CausalLMAdapter.answer_logprobs`.

Prompts are tokenized exactly as the tokenizer does by default (special tokens
included), as a deployment calling ``tokenizer(prompt)`` would. An input that
does not fit ``max_length`` (minus the longest answer) is cut, token-wise, from
its end, and every cut is counted (``AnswerScores.truncated``), never silent;
the template itself is never cut.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from probes.base import ProbeError
from probes.models.answer_batch import AnswerBatcher, common_prefix_length
from probes.models.hf_adapters import HuggingFaceAdapter
from probes.models.prompt import AnswerScores, PromptConfig, fill_template

__all__ = ["CausalLMAdapter"]

Progress = Callable[[float], None] | None
Cancel = Callable[[], bool] | None

MSG_NO_PROMPT = (
    "model.prompt: a causal-lm model scores texts only with a prompt block "
    "(template with {text}, favorable, unfavorable); see docs/generative.md"
)
MSG_NO_CHAT = (
    "model.prompt.chat_template: 'always' but the tokenizer of {path} has no chat template; "
    "use 'auto' or 'never'"
)
MSG_EMPTY_ANSWER = "model.prompt: the answer {answer!r} has no tokens for this tokenizer"
MSG_SAME_TOKENS = "model.prompt: the answers {answers} give the same tokens {ids}; make them differ"
MSG_NO_ROOM = (
    "model.max_length: {limit} tokens leave no room for the input: the prompt without its "
    "input takes {overhead} tokens and the longest answer {answer}; raise model.max_length "
    "(the model allows {context})"
)


@dataclass(eq=False)
class CausalLMAdapter(HuggingFaceAdapter):
    """Causal LM: ``log_likelihood`` of texts; with ``prompt``, ``score`` of decisions."""

    prompt: PromptConfig | None = None
    threshold: float = 0.5
    reuse_prefix: bool = True
    context: int | None = None  # the model's context window (positions), when known
    prefix_status: str = "not used yet"

    def info(self) -> dict[str, Any]:
        out = super().info()
        if self.prompt is not None:
            out["prompt"] = {
                "chat_template": self.uses_chat_template(),
                "prefix_reuse": self.prefix_status,
            }
        return out

    # ------------------------------------------------------------- log-likelihood
    def log_likelihood(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> np.ndarray:
        """Sum of log P(token_t | tokens_<t) per text.

        The BOS token (GPT-2: ``<|endoftext|>``) is prepended when the tokenizer
        does not add it, so the first real token is scored too.
        """
        import torch

        bos = self.tokenizer.bos_token_id
        seqs = [
            (int(bos),) + s if bos is not None and (not s or s[0] != bos) else s
            for s in self.encode(texts)
        ]

        def compute(batch: list[tuple[int, ...]]) -> np.ndarray:
            out, ids, mask = self._forward(batch)
            logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
            token = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            return (token * mask[:, 1:]).sum(dim=1).cpu().numpy()

        out = self._run(seqs, compute, progress=progress, should_cancel=should_cancel)
        return out.astype(np.float64)

    # ------------------------------------------------------------- prompts
    def uses_chat_template(self) -> bool:
        """Whether prompts are wrapped in the tokenizer's chat template."""
        mode = self.prompt.chat_template if self.prompt is not None else "auto"
        has = bool(getattr(self.tokenizer, "chat_template", None))
        if mode == "always" and not has:
            raise ProbeError(MSG_NO_CHAT.format(path=self.path))
        return has and mode != "never"

    def render(self, template: str, slots: Mapping[str, str]) -> str:
        """The prompt text the model continues: template filled, chat template applied."""
        text = fill_template(template, dict(slots))
        if not self.uses_chat_template():
            return text
        system = self.prompt.system if self.prompt is not None else None
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": text})
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def _ids(self, text: str) -> list[int]:
        # a chat template writes its own special tokens; plain prompts get the tokenizer's
        specials = not self.uses_chat_template()
        return [int(i) for i in self.tokenizer(text, add_special_tokens=specials)["input_ids"]]

    def answer_ids(self, answers: Sequence[str], context: str) -> list[tuple[int, ...]]:
        """Token ids of each answer as the model would write it after ``context``.

        Taken from tokenizing context + answer together (so a tokenizer that merges
        across the boundary, or adds a prefix space, is followed); the answer alone
        when the context's tokens are not a prefix of the whole.
        """
        ctx = self._ids(context)
        out = []
        for a in answers:
            whole = self._ids(context + a)
            ids = whole[len(ctx) :] if whole[: len(ctx)] == ctx else None
            if not ids:
                ids = [int(i) for i in self.tokenizer(a, add_special_tokens=False)["input_ids"]]
            if not ids:
                raise ProbeError(MSG_EMPTY_ANSWER.format(answer=a))
            out.append(tuple(ids))
        if len(set(out)) < len(out):
            raise ProbeError(MSG_SAME_TOKENS.format(answers=list(answers), ids=out[0]))
        return out

    def _limit(self) -> int:
        return min(self.max_length, self.context) if self.context else self.max_length

    def _fit(self, template: str, slots: Mapping[str, str], room: int) -> tuple[list[int], bool]:
        """Prompt ids within ``room`` tokens: each slot cut to an equal token budget if needed."""
        ids = self._ids(self.render(template, slots))
        if len(ids) <= room:
            return ids, False
        overhead = len(self._ids(self.render(template, dict.fromkeys(slots, ""))))
        if overhead >= room:
            raise ProbeError(
                MSG_NO_ROOM.format(
                    limit=self._limit(),
                    overhead=overhead,
                    answer=self._limit() - room,
                    context=self.context or "more",
                )
            )
        tok = self.tokenizer
        slot_ids = {k: tok(v, add_special_tokens=False)["input_ids"] for k, v in slots.items()}
        budget = (room - overhead) // len(slots)
        while budget >= 0:
            cut = {
                k: v if len(slot_ids[k]) <= budget else tok.decode(slot_ids[k][:budget])
                for k, v in slots.items()
            }
            ids = self._ids(self.render(template, cut))
            if len(ids) <= room:
                return ids, True
            budget -= max(1, (len(ids) - room) // len(slots))
        raise ProbeError(MSG_NO_ROOM.format(limit=self._limit(), overhead=overhead, answer=0,
                                            context=self.context or "more"))  # fmt: skip

    def answer_logprobs(
        self,
        template: str,
        slots: Sequence[Mapping[str, str]],
        answers: Sequence[str],
        *,
        progress: Progress = None,
        should_cancel: Cancel = None,
    ) -> AnswerScores:
        """log P(answer | prompt) for each filled ``template`` and each answer (summed tokens).

        The prefix every prompt shares is computed once and its key/value cache reused
        (:class:`probes.models.answer_batch.AnswerBatcher`); identical prompts once.
        """
        if not slots:
            return AnswerScores(np.zeros((0, len(answers))), 0)
        answer_ids = self.answer_ids(answers, self.render(template, slots[0]))
        room = self._limit() - max(len(a) for a in answer_ids)
        fitted = [self._fit(template, s, room) for s in slots]
        prompts = [tuple(ids) for ids, _ in fitted]
        prefix_len = common_prefix_length(prompts) if self.reuse_prefix else 0
        half = self.precision in ("bf16", "fp16")
        batcher = AnswerBatcher(
            self.model,
            prefix=prompts[0][:prefix_len],
            answers=answer_ids,
            pad_id=self.pad_id,
            device=self.device,
            reuse_prefix=self.reuse_prefix,
            tolerance=0.1 if half else 1e-3,
        )
        rows = [p[prefix_len:] for p in prompts]
        logp = self._run(rows, batcher, progress=progress, should_cancel=should_cancel)
        self.prefix_status = batcher.status + (f", {prefix_len} tokens" if batcher.reuse else "")
        truncated = sum(1 for _, cut in fitted if cut)
        return AnswerScores(np.asarray(logp, dtype=np.float64).reshape(len(rows), -1), truncated)

    def answer_scores(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> AnswerScores:
        """Favorable and unfavorable log-probabilities after ``model.prompt`` per text."""
        if self.prompt is None:
            raise ProbeError(MSG_NO_PROMPT)
        return self.answer_logprobs(
            self.prompt.template,
            [{"text": t} for t in texts],
            self.prompt.answers,
            progress=progress,
            should_cancel=should_cancel,
        )

    def score(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> np.ndarray:
        """P(favorable) / (P(favorable) + P(unfavorable)) per text."""
        return self.answer_scores(texts, progress=progress, should_cancel=should_cancel).share(0)

    def predict(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> np.ndarray:
        """``score >= threshold`` per text."""
        return self.score(texts, progress=progress, should_cancel=should_cancel) >= self.threshold
