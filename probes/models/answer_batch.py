"""Batched answer log-probabilities for a causal LM, with the shared prompt prefix cached.

Every prompt of an audit starts with the same tokens (the chat template's
preamble, a system message, the instructions before the input). They are run
through the model **once**; their key/value cache is copied for each batch and
only the rest of each prompt is computed on top of it:

    [shared prefix, cached] [pad pad | rest of prompt i] -> logits of the next token

The rest of each prompt is left-padded, so its last token sits in the last
column for every row and only that column's logits are computed
(``logits_to_keep=1``); pads are masked and position ids count real tokens only,
so every row is computed as if alone. The first token of every answer is read
from those logits: answers of one token are scored in the same forward pass as
the prompt. Longer answers need one more, short pass over their own tokens on
the cache of the batch (``batch x answers`` rows of a few tokens).

A self-check compares the first prompt's answers with and without the cached
prefix before the cache is trusted; a model whose cache or position ids behave
otherwise falls back to recomputing each prompt in full (``status`` says which).
torch is imported inside the functions.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["AnswerBatcher", "common_prefix_length"]

Row = tuple[int, ...]


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Tokens every sequence starts with, leaving at least one token in each.

    The common prefix of a set is that of its lexicographic minimum and maximum.

    >>> common_prefix_length([(1, 2, 3, 4), (1, 2, 5), (1, 2, 3)])
    2
    """
    if not seqs:
        return 0
    lo, hi = min(map(tuple, seqs)), max(map(tuple, seqs))
    n = 0
    for a, b in zip(lo, hi):
        if a != b:
            break
        n += 1
    return max(0, min(n, min(len(s) for s in seqs) - 1))


def _left_pad(rows: Sequence[Row], pad_id: int, device: str) -> tuple[Any, Any]:
    import torch

    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = int(lens.max())
    mask = np.arange(width)[None, :] >= (width - lens)[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    ids[mask] = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lens.sum()))
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask.astype(np.int64)).to(device)


class AnswerBatcher:
    """``__call__(rows)`` -> (len(rows), answers) summed log P(answer | prefix + row).

    Parameters
    ----------
    model
        A transformers causal LM in eval mode (called inside ``inference_mode``).
    prefix
        Token ids every prompt starts with (already removed from ``rows``).
    answers
        Token ids of each allowed answer (non-empty).
    reuse_prefix
        Cache the prefix once (default); False recomputes it with every prompt
        (the benchmark's baseline, and the fallback).
    tolerance
        Largest log-probability difference the self-check accepts.
    """

    def __init__(
        self,
        model: Any,
        *,
        prefix: Row,
        answers: Sequence[Row],
        pad_id: int,
        device: str,
        reuse_prefix: bool = True,
        tolerance: float = 1e-3,
    ) -> None:
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.prefix = tuple(prefix)
        self.answers = [tuple(a) for a in answers]
        self.pad_id = pad_id
        self.device = device
        self.tolerance = tolerance
        self._positions = "position_ids" in params
        self._keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._cache: Any = None
        self._checked = False
        self.reuse = bool(reuse_prefix and self.prefix and self._positions)
        self.status = "on" if self.reuse else "off"
        self.forward_passes = 0

    # ------------------------------------------------------------------ public
    def __call__(self, rows: list[Row]) -> np.ndarray:
        if self.reuse and not self._checked:
            self._self_check(rows[0])
        if self.reuse:
            out = self._score(
                rows, prefix_len=len(self.prefix), cache=self._prefix_cache(len(rows))
            )
        else:
            out = self._score([self.prefix + r for r in rows], prefix_len=0, cache=None)
        return out.double().cpu().numpy()

    # ------------------------------------------------------------------ internals
    def _prefix_cache(self, batch: int) -> Any:
        import torch

        if self._cache is None:
            ids = torch.tensor([self.prefix], dtype=torch.long, device=self.device)
            self._cache = self.model(input_ids=ids, use_cache=True).past_key_values
            self.forward_passes += 1
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(batch)
        return cache

    def _self_check(self, row: Row) -> None:
        """The cached prefix gives the full prompt's answers (else fall back to full prompts)."""
        import torch

        self._checked = True
        try:
            cached = self._score([row], prefix_len=len(self.prefix), cache=self._prefix_cache(1))
        except (AttributeError, TypeError, ValueError) as exc:  # no usable cache object
            self.reuse, self.status = False, f"off (the model's cache cannot be reused: {exc})"
            return
        full = self._score([self.prefix + row], prefix_len=0, cache=None)
        diff = float(torch.max(torch.abs(cached - full)))
        if not diff <= self.tolerance:
            self.reuse = False
            self.status = (
                f"off (self-check: cached prefix differs by {diff:.2g} in log-probability)"
            )

    def _score(self, rows: Sequence[Row], *, prefix_len: int, cache: Any) -> Any:
        """(rows, answers) float32 log-probabilities on the device."""
        import torch

        ids, mask = _left_pad(rows, self.pad_id, self.device)
        b = len(rows)
        full_mask = mask
        kwargs: dict[str, Any] = dict(self._keep)
        if prefix_len:
            ones = torch.ones((b, prefix_len), dtype=mask.dtype, device=mask.device)
            full_mask = torch.cat([ones, mask], dim=1)
            kwargs["past_key_values"] = cache
        if self._positions:
            kwargs["position_ids"] = prefix_len + (mask.cumsum(dim=1) - 1).clamp(min=0)
        multi = [j for j, a in enumerate(self.answers) if len(a) > 1]
        out = self.model(input_ids=ids, attention_mask=full_mask, use_cache=bool(multi), **kwargs)
        self.forward_passes += 1
        last = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        first = torch.tensor([a[0] for a in self.answers], device=last.device)
        logp = last[:, first]
        if multi:
            lens = prefix_len + mask.sum(dim=1)
            logp[:, multi] += self._continue(out.past_key_values, full_mask, lens, multi)
        return logp

    def _continue(self, cache: Any, mask: Any, lens: Any, multi: list[int]) -> Any:
        """Log P(answer tokens 2..n | prompt, earlier answer tokens) for the ``multi`` answers."""
        import torch

        b, m = mask.shape[0], len(multi)
        width = max(len(self.answers[j]) - 1 for j in multi)
        feed = torch.full((m, width), self.pad_id, dtype=torch.long)
        target = torch.zeros((m, width), dtype=torch.long)
        valid = torch.zeros((m, width), dtype=torch.bool)
        for i, j in enumerate(multi):
            a = self.answers[j]
            feed[i, : len(a) - 1] = torch.tensor(a[:-1])
            target[i, : len(a) - 1] = torch.tensor(a[1:])
            valid[i, : len(a) - 1] = True
        dev = mask.device
        feed, target, valid = feed.to(dev).repeat(b, 1), target.to(dev), valid.to(dev)
        cache.batch_repeat_interleave(m)  # row r*m + i: prompt r, answer multi[i]
        kwargs: dict[str, Any] = {}
        if self._positions:
            start = lens.repeat_interleave(m)[:, None]
            kwargs["position_ids"] = start + torch.arange(width, device=dev)[None, :]
        att = torch.cat([mask.repeat_interleave(m, dim=0), valid.long().repeat(b, 1)], dim=1)
        out = self.model(input_ids=feed, attention_mask=att, past_key_values=cache, **kwargs)
        self.forward_passes += 1
        logp = torch.log_softmax(out.logits.float(), dim=-1).view(b, m, width, -1)
        picked = logp.gather(-1, target[None, :, :, None].expand(b, m, width, 1)).squeeze(-1)
        return (picked * valid[None]).sum(dim=-1)
