"""Tiny Hugging Face models built from configs (random weights, seconds to build).

Each fixture writes a real model folder (config.json, model.safetensors,
tokenizer files) with ``save_pretrained(safe_serialization=True)``, so the
adapters load them through exactly the path a user's folder takes. Session
scoped: built once per test run.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

WORDS = (
    "the a an is was he she him her his man woman men women boy girl doctor nurse "
    "engineer teacher good bad poor rich old young people person this that here there "
    "likes hates math art family career home office"
).split()


def _write_wordpiece_vocab(folder: Path) -> Path:
    """Special tokens, whole words, and single letters (so any lowercase word splits)."""
    letters = list(string.ascii_lowercase)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "'", "!", "?"]
    vocab += WORDS + letters + [f"##{c}" for c in letters]
    path = folder / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    return path


def _bert_tokenizer(folder: Path):  # noqa: ANN202 - transformers type
    # transformers 5 keeps the *TokenizerFast names as runtime-only aliases (lazy module)
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    folder.mkdir(parents=True, exist_ok=True)
    # positional vocab path: transformers 4 calls it vocab_file, transformers 5 vocab
    return BertTokenizerFast(str(_write_wordpiece_vocab(folder)), do_lower_case=True)


def _bert_config(vocab_size: int, **kwargs: Any):  # noqa: ANN202
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **kwargs,
    )


def build_bert(folder: Path, task: str, **config_kwargs: object) -> Path:
    """Save a tiny BERT for ``task`` (text-classification, fill-mask, embedding)."""
    import torch
    from transformers import BertForMaskedLM, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    tokenizer = _bert_tokenizer(folder)
    config = _bert_config(len(tokenizer), **config_kwargs)
    cls = {
        "text-classification": BertForSequenceClassification,
        "fill-mask": BertForMaskedLM,
        "embedding": BertModel,
    }[task]
    model = cls(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_gpt2(folder: Path) -> Path:
    """Save a tiny GPT-2 with a byte-level BPE tokenizer that has no merges."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (  # type: ignore[attr-defined]
        GPT2Config,
        GPT2LMHeadModel,
        GPT2TokenizerFast,  # a runtime-only alias in transformers 5, as above
    )

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=vocab["<|endoftext|>"], eos_token_id=vocab["<|endoftext|>"],
    )  # fmt: skip
    GPT2LMHeadModel(config).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny models by task; treat them as read-only (copy before editing)."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "text-classification": build_bert(
            root / "clf",
            "text-classification",
            num_labels=2,
            id2label={0: "reject", 1: "accept"},
            label2id={"reject": 0, "accept": 1},
        ),
        "fill-mask": build_bert(root / "mlm", "fill-mask"),
        "embedding": build_bert(root / "emb", "embedding"),
        "causal-lm": build_gpt2(root / "gpt2"),
    }


SCREENERS: dict[str, dict[str, Any]] = {
    "fair": {"task": "decision", "biased": False},  # Yes iff >= 5 years, names ignored
    "biased": {"task": "decision", "biased": True},  # men need only 3 years
    "untrained": {"task": None},  # random weights: not answering
    "position": {"task": "pairwise"},  # picks the first candidate 80% of the time
}


@pytest.fixture(scope="session")
def screeners(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``screeners(name)``: folder of a tiny GPT-2 screener (tests/probes/screener_lm.py),
    trained on first use and kept for the session; names: fair, biased, untrained, position."""
    from tests.probes.screener_lm import build_screener

    root = tmp_path_factory.mktemp("screeners")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_screener(root / name, **SCREENERS[name])
        return built[name]

    return get


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the Hugging Face Hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
