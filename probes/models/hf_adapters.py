"""Hugging Face task adapters: the loaded model and tokenizer, and one method per task.

:class:`HuggingFaceAdapter` holds what every task shares (tokenizing, padding,
batching); the text-classification and fill-mask adapters add their scoring
method (the embedding adapter is in :mod:`probes.models.hf_embedding`, the
causal-LM one in :mod:`probes.models.hf_causal`).
Every adapter runs its forward passes through :func:`probes.inference.run_batched`
(dedupe, length sort, batches, OOM halving, progress, cancel). torch is imported
inside the methods that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from probes.inference import inference_context, pad_batch, run_batched
from probes.models.safety import ModelLoadError

__all__ = [
    "FillMaskAdapter",
    "HuggingFaceAdapter",
    "TextClassificationAdapter",
    "resolve_positive_label",
]

Progress = Callable[[float], None] | None
Cancel = Callable[[], bool] | None


@dataclass(eq=False)
class HuggingFaceAdapter:
    """Common state of every task adapter: the loaded model and how to batch it."""

    kind: ClassVar[str] = "huggingface"
    path: Path
    task: str
    sha256: str
    device: str
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    batch_size: int = 64
    max_length: int = 256
    max_tokens: int | None = None
    precision: str = "fp32"  # fp32 | bf16 | fp16: the dtype the weights run in
    linear_backend: str = "stock"  # CPU fp32 nn.Linear: stock | onednn
    precision_info: dict[str, Any] = field(default_factory=dict)  # for the manifest

    def info(self) -> dict[str, Any]:
        """What results.json ``model`` records about this model."""
        return {
            "kind": self.kind,
            "sha256": self.sha256,
            "task": self.task,
            "architecture": type(self.model).__name__,
            "device": self.device,
            "max_length": self.max_length,
            "precision": self.precision,
            "linear_backend": self.linear_backend,
        }

    def encode(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """Token ids (with the model's special tokens), truncated to ``max_length``."""
        if isinstance(texts, str):
            raise TypeError("pass a sequence of texts, not a single string")
        if len(texts) == 0:
            return []
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [tuple(int(i) for i in ids) for ids in enc["input_ids"]]

    @property
    def pad_id(self) -> int:
        for value in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if value is not None:
                return int(value)
        return 0

    def _forward(self, seqs: Sequence[Sequence[int]]) -> tuple[Any, Any, Any]:
        ids, mask = pad_batch(seqs, pad_id=self.pad_id, device=self.device)
        return self.model(input_ids=ids, attention_mask=mask), ids, mask

    def _run(
        self,
        items: Sequence[Any],
        compute: Callable[[list[Any]], np.ndarray],
        *,
        progress: Progress,
        should_cancel: Cancel,
        length: Callable[[Any], int] | None = None,
    ) -> np.ndarray:
        def guarded(batch: list[Any]) -> np.ndarray:
            with inference_context(self.device):
                return compute(batch)

        return run_batched(
            items,
            guarded,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
            length=length,
            progress=progress,
            should_cancel=should_cancel,
        )


def resolve_positive_label(positive_label: int | str | None, labels: Sequence[str]) -> int:
    """Index of the class whose probability is the score (``model.positive_label``)."""
    n = len(labels)
    valid = f"an index 0..{max(n - 1, 0)} or one of {list(labels)}"
    if positive_label is None:
        if n in (1, 2):
            return n - 1
        raise ModelLoadError(
            f"model.positive_label: required for a {n}-class model; valid: {valid}"
        )
    if isinstance(positive_label, str):
        if positive_label in labels:
            return list(labels).index(positive_label)
        folded = [i for i, lab in enumerate(labels) if lab.lower() == positive_label.lower()]
        if len(folded) == 1:
            return folded[0]
        if positive_label.strip().isdigit():
            positive_label = int(positive_label)
    if isinstance(positive_label, int) and not isinstance(positive_label, bool):
        if 0 <= positive_label < max(n, 1):
            return positive_label
    raise ModelLoadError(f"model.positive_label: {positive_label!r} is not a class; valid: {valid}")


@dataclass(eq=False)
class TextClassificationAdapter(HuggingFaceAdapter):
    """Sequence classifier: ``score`` is P(positive class), ``predict`` thresholds it."""

    positive_index: int = 1
    threshold: float = 0.5
    labels: tuple[str, ...] = ()

    @classmethod
    def create(
        cls, *, positive_label: int | str | None, **kwargs: Any
    ) -> TextClassificationAdapter:
        config = kwargs["model"].config
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        labels = tuple(id2label.get(i, str(i)) for i in range(int(config.num_labels)))
        index = resolve_positive_label(positive_label, labels)
        return cls(positive_index=index, labels=labels, **kwargs)

    def score(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> np.ndarray:
        """P(positive class) per text (sigmoid of the logit for a one-logit head)."""
        import torch

        def compute(batch: list[tuple[int, ...]]) -> np.ndarray:
            logits = self._forward(batch)[0].logits.float()
            if logits.shape[-1] == 1:
                return torch.sigmoid(logits[:, 0]).cpu().numpy()
            return torch.softmax(logits, dim=-1)[:, self.positive_index].cpu().numpy()

        out = self._run(self.encode(texts), compute, progress=progress, should_cancel=should_cancel)
        return out.astype(np.float64)

    def predict(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> np.ndarray:
        """``score >= threshold`` per text."""
        return self.score(texts, progress=progress, should_cancel=should_cancel) >= self.threshold


@dataclass(eq=False)
class FillMaskAdapter(HuggingFaceAdapter):
    """Masked language model scored by pseudo-log-likelihood (Salazar et al., 2020)."""

    @property
    def mask_token(self) -> str:
        return str(self.tokenizer.mask_token)

    def scorable_positions(self, ids: Sequence[int]) -> list[int]:
        """Positions of real tokens: every one but CLS/SEP/BOS/EOS/PAD/MASK."""
        t = self.tokenizer
        special = {
            t.cls_token_id, t.sep_token_id, t.bos_token_id, t.eos_token_id,
            t.pad_token_id, t.mask_token_id,
        }  # fmt: skip
        return [i for i, tok in enumerate(ids) if tok not in special]

    def pseudo_log_likelihood(
        self,
        sentences: Sequence[str],
        *,
        positions: Sequence[Sequence[int]] | None = None,
        progress: Progress = None,
        should_cancel: Cancel = None,
    ) -> np.ndarray:
        """Sum over positions of log P(token | sentence with that token masked).

        ``positions`` (indices into :meth:`encode`'s ids) restricts which tokens are
        masked and summed, as CrowS-Pairs does for the tokens two sentences share;
        default: :meth:`scorable_positions`. Every masked copy of every sentence is
        one item for :func:`run_batched`, so copies are batched together.
        """
        import torch

        if self.tokenizer.mask_token_id is None:
            raise ModelLoadError(f"model.path: the tokenizer of {self.path} has no mask token")
        seqs = self.encode(sentences)
        if positions is None:
            positions = [self.scorable_positions(s) for s in seqs]
        if len(positions) != len(seqs):
            raise ValueError(f"positions has {len(positions)} entries for {len(seqs)} sentences")
        items = [(s, int(p)) for s, pos in zip(seqs, positions, strict=True) for p in pos]
        owner = np.array([i for i, pos in enumerate(positions) for _ in pos], dtype=np.int64)
        mask_id = int(self.tokenizer.mask_token_id)

        def compute(batch: list[tuple[tuple[int, ...], int]]) -> np.ndarray:
            masked = [s[:p] + (mask_id,) + s[p + 1 :] for s, p in batch]
            logits = self._forward(masked)[0].logits
            rows = torch.arange(len(batch), device=logits.device)
            at = torch.tensor([p for _, p in batch], device=logits.device)
            target = torch.tensor([s[p] for s, p in batch], device=logits.device)
            logp = torch.log_softmax(logits[rows, at].float(), dim=-1)
            return logp[rows, target].cpu().numpy()

        totals = np.zeros(len(seqs), dtype=np.float64)
        if items:
            values = self._run(
                items,
                compute,
                length=lambda item: len(item[0]),
                progress=progress,
                should_cancel=should_cancel,
            )
            np.add.at(totals, owner, values.astype(np.float64))
        return totals
