"""Hugging Face model loading: local folders only, no remote code, no unsafe pickles.

:func:`load_huggingface` checks the folder before transformers sees it
(:mod:`probes.models.hf_folder`):

- the path must be a local folder (a Hub id is refused unless ``allow_hub``; then
  it is resolved to a local snapshot, from the cache only when ``HF_HUB_OFFLINE``
  is set, and checked like any folder);
- ``trust_remote_code`` is never passed as True, and a folder that asks for remote
  code (``auto_map`` in a config file) or ships ``.py`` files is refused;
- ``*.safetensors`` weights are preferred; a ``pytorch_model.bin`` is first read
  with ``torch.load(weights_only=True)`` (the restricted unpickler that never runs
  code) and refused when that fails, then loaded by transformers with
  ``weights_only=True`` as well.

It then returns the adapter for the task (:mod:`probes.models.hf_adapters`,
:mod:`probes.models.hf_embedding`), whose names are re-exported here. torch and
transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from probes.inference import MODEL_CACHE, configure_cpu_threads, pick_device, use_onednn_linear
from probes.models.fingerprint import fingerprint
from probes.models.hf_adapters import (
    CausalLMAdapter,
    FillMaskAdapter,
    HuggingFaceAdapter,
    TextClassificationAdapter,
    resolve_positive_label,
)
from probes.models.hf_embedding import EmbeddingAdapter, read_sentence_transformers_config
from probes.models.hf_folder import (
    MSG_HUB_ID,
    MSG_NOT_FOUND,
    Weights,
    check_model_folder,
    resolve_model_folder,
)
from probes.models.safety import ModelLoadError

__all__ = [
    "MSG_HUB_ID",
    "MSG_NOT_FOUND",
    "CausalLMAdapter",
    "EmbeddingAdapter",
    "FillMaskAdapter",
    "HuggingFaceAdapter",
    "TextClassificationAdapter",
    "check_model_folder",
    "load_huggingface",
    "resolve_positive_label",
]

MSG_BAD_TASK = "model.task: {task!r} is not supported; valid tasks: {valid}"
MSG_MISSING_WEIGHTS = (
    "model.path: {path} has no trained weights for {keys} (task {task!r}); is it a {task} "
    "model? Check model.task"
)

TASKS = ("text-classification", "fill-mask", "embedding", "causal-lm")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar; our errors say what matters."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _model_class(task: str) -> Any:
    import transformers

    return {
        "text-classification": transformers.AutoModelForSequenceClassification,
        "fill-mask": transformers.AutoModelForMaskedLM,
        "embedding": transformers.AutoModel,
        "causal-lm": transformers.AutoModelForCausalLM,
    }[task]


def _load_torch(path: Path, task: str, device: str, weights: Weights) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a checked folder, never with remote code."""
    from transformers import AutoTokenizer

    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    with _quiet_transformers():
        model, info = _model_class(task).from_pretrained(
            str(path),
            use_safetensors=weights.format == "safetensors",
            weights_only=True,
            output_loading_info=True,
            **common,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path), **common)
    # Mean/CLS pooling reads the hidden states, never BERT's pooler layer.
    unused = ("pooler.",) if task == "embedding" else ()
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith(unused)]
    if missing:
        shown = ", ".join(sorted(missing)[:4]) + (" ..." if len(missing) > 4 else "")
        raise ModelLoadError(MSG_MISSING_WEIGHTS.format(path=path, keys=shown, task=task))
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is None:
        # GPT-style classifiers find the last real token through pad_token_id; we pad with EOS.
        model.config.pad_token_id = tokenizer.eos_token_id
    model.eval()
    model.to(device)
    if device == "cpu":
        use_onednn_linear(model)  # same results, faster float32 matmuls on some CPUs
    return model, tokenizer


def load_huggingface(
    *,
    path: Path,
    task: str,
    positive_label: int | str | None = None,
    batch_size: int = 64,
    max_length: int = 256,
    max_tokens: int | None = None,
    device: str | None = None,
    allow_hub: bool = False,
    threshold: float = 0.5,
) -> HuggingFaceAdapter:
    """Load a local Hugging Face model folder as the adapter for ``task``.

    Parameters
    ----------
    path
        Local model folder (config.json, weights, tokenizer files).
    task
        ``text-classification`` | ``fill-mask`` | ``embedding`` | ``causal-lm``.
    positive_label
        text-classification only: class index or label name (``config.id2label``)
        whose probability is the score; default index 1 of a two-class model.
    batch_size, max_length
        Inference batch size (halved on CUDA out-of-memory) and truncation length.
    max_tokens
        Optional token budget per batch (texts x the longest one's tokens), on top
        of ``batch_size``: long texts then go fewer to a batch.
    device
        ``cpu``, ``cuda``, ``cuda:1`` ...; default CUDA when available.
    allow_hub
        Accept a Hub id (resolved from the local cache when ``HF_HUB_OFFLINE`` is set).
    threshold
        text-classification only: ``predict`` is ``score >= threshold``.

    The torch model is cached per process by (fingerprint, task, device), so
    loading the same folder again is cheap.
    """
    if task not in TASKS:
        raise ModelLoadError(MSG_BAD_TASK.format(task=task, valid=", ".join(TASKS)))
    if batch_size < 1:
        raise ModelLoadError(f"model.batch_size: must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ModelLoadError(f"model.max_tokens: must be >= 1 or None, got {max_tokens}")
    folder = resolve_model_folder(Path(path), allow_hub)
    weights = check_model_folder(folder)
    try:
        dev = pick_device(device)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    if dev == "cpu":
        configure_cpu_threads()
    sha = fingerprint(folder)
    model, tokenizer = MODEL_CACHE.get_or_load(
        (sha, task, dev), lambda: _load_torch(folder, task, dev, weights)
    )
    common: dict[str, Any] = {
        "path": folder,
        "task": task,
        "sha256": sha,
        "device": dev,
        "model": model,
        "tokenizer": tokenizer,
        "batch_size": batch_size,
        "max_length": max_length,
        "max_tokens": max_tokens,
    }
    if task == "text-classification":
        return TextClassificationAdapter.create(
            positive_label=positive_label, threshold=threshold, **common
        )
    if task == "fill-mask":
        return FillMaskAdapter(**common)
    if task == "embedding":
        pooling, normalize, st_max = read_sentence_transformers_config(folder)
        common["max_length"] = min(max_length, st_max) if st_max else max_length
        return EmbeddingAdapter(pooling=pooling, normalize=normalize, **common)
    return CausalLMAdapter(**common)
