"""Sentence embeddings from a Hugging Face folder, sentence-transformers config honoured.

:func:`read_sentence_transformers_config` reads the pooling, normalisation and
maximum length that a sentence-transformers folder asks for;
:class:`EmbeddingAdapter` pools the last hidden state accordingly. torch is
imported inside :meth:`EmbeddingAdapter.embed`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probes.models.hf_adapters import Cancel, HuggingFaceAdapter, Progress
from probes.models.safety import ModelLoadError

__all__ = ["EmbeddingAdapter", "read_sentence_transformers_config"]

_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
)
_UNSUPPORTED_POOLING = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


def read_sentence_transformers_config(folder: Path) -> tuple[tuple[str, ...], bool, int | None]:
    """(pooling modes, normalize, max_seq_length) from a sentence-transformers folder.

    Without ``modules.json`` the default is plain mean pooling, no normalisation.
    Modules other than Transformer/Pooling/Normalize (e.g. Dense) are refused
    rather than silently skipped, since skipping them changes the embedding.
    """
    pooling_dir: Path | None = folder / "1_Pooling"
    normalize = False
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        pooling_dir = None
        for module in json.loads(modules_file.read_text(encoding="utf-8")):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind == "Pooling":
                pooling_dir = folder / str(module.get("path", ""))
            elif kind == "Normalize":
                normalize = True
            elif kind != "Transformer":
                raise ModelLoadError(
                    f"model.path: {modules_file} has a {kind!r} module; supported "
                    "sentence-transformers modules: Transformer, Pooling, Normalize"
                )
    modes: tuple[str, ...] = ("mean",)
    pooling_file = pooling_dir / "config.json" if pooling_dir is not None else None
    if pooling_file is not None and pooling_file.is_file():
        cfg = json.loads(pooling_file.read_text(encoding="utf-8"))
        bad = [flag for flag in _UNSUPPORTED_POOLING if cfg.get(flag)]
        modes = tuple(mode for flag, mode in _POOLING_FLAGS if cfg.get(flag))
        if bad or not modes:
            raise ModelLoadError(
                f"model.path: {pooling_file} asks for pooling {bad or 'none'}; supported: "
                + ", ".join(flag for flag, _ in _POOLING_FLAGS)
            )
    st_config = folder / "sentence_bert_config.json"
    max_seq = None
    if st_config.is_file():
        value = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        max_seq = int(value) if value else None
    return modes, normalize, max_seq


@dataclass(eq=False)
class EmbeddingAdapter(HuggingFaceAdapter):
    """Sentence embeddings: pooled last hidden state (sentence-transformers config honoured)."""

    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = False

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size) * len(self.pooling)

    def embed(
        self, texts: Sequence[str], *, progress: Progress = None, should_cancel: Cancel = None
    ) -> np.ndarray:
        """One float32 row per text, shape ``(len(texts), dimension)``."""
        import torch

        def compute(batch: list[tuple[int, ...]]) -> np.ndarray:
            out, _, mask = self._forward(batch)
            hidden = out.last_hidden_state.float()
            m = mask.unsqueeze(-1).to(hidden.dtype)
            counts = m.sum(dim=1).clamp(min=1e-9)
            parts = []
            for mode in self.pooling:
                if mode == "cls":
                    parts.append(hidden[:, 0])
                elif mode == "max":
                    parts.append(hidden.masked_fill(m == 0, -1e9).max(dim=1).values)
                elif mode == "mean":
                    parts.append((hidden * m).sum(dim=1) / counts)
                else:  # mean_sqrt_len
                    parts.append((hidden * m).sum(dim=1) / counts.sqrt())
            emb = torch.cat(parts, dim=-1)
            if self.normalize:
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
            return emb.cpu().numpy()

        ids = self.encode(texts)
        if not ids:
            return np.empty((0, self.dimension), dtype=np.float32)
        out = self._run(ids, compute, progress=progress, should_cancel=should_cancel)
        return out.astype(np.float32)
