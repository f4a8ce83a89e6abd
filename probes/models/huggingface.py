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

Weights load in ``precision`` (``auto``: the checkpoint's dtype, else fp32); the
model then runs in exactly that precision, without autocast, and the results
record it. It then returns the adapter for the task
(:mod:`probes.models.hf_adapters`, :mod:`probes.models.hf_embedding`,
:mod:`probes.models.hf_causal`), whose names are re-exported here. torch and
transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from probes.inference import MODEL_CACHE, configure_cpu_threads, pick_device, pick_linear_backend
from probes.models.fingerprint import fingerprint
from probes.models.hf_adapters import (
    FillMaskAdapter,
    HuggingFaceAdapter,
    TextClassificationAdapter,
    resolve_positive_label,
)
from probes.models.hf_causal import CausalLMAdapter
from probes.models.hf_embedding import EmbeddingAdapter, read_sentence_transformers_config
from probes.models.hf_folder import (
    MSG_HUB_ID,
    MSG_NOT_FOUND,
    Weights,
    check_model_folder,
    resolve_model_folder,
)
from probes.models.prompt import PromptConfig
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
    "resolve_precision",
]

MSG_BAD_TASK = "model.task: {task!r} is not supported; valid tasks: {valid}"
MSG_MISSING_WEIGHTS = (
    "model.path: {path} has no trained weights for {keys} (task {task!r}); is it a {task} "
    "model? Check model.task"
)

TASKS = ("text-classification", "fill-mask", "embedding", "causal-lm")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
DEFAULT_MAX_LENGTH = 256  # encoders; a causal LM defaults to its context window (capped)
CAUSAL_MAX_LENGTH = 4096
MSG_PRECISION = "model.precision: {value!r} is not valid; valid: {valid}"
MSG_BF16_GPU = "model.precision: bf16 is not supported on {device}; use fp16 or fp32"
MSG_PROMPT_TASK = "model.prompt: only for model.task causal-lm, not {task!r}"


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


def resolve_precision(folder: Path, requested: str, device: str) -> tuple[str, str | None]:
    """(precision the weights will run in, the checkpoint's own dtype or None).

    ``auto`` is the checkpoint's ``dtype`` (``torch_dtype`` in older configs) when it
    is float32, bfloat16 or float16, else fp32.
    """
    if requested not in PRECISIONS:
        raise ModelLoadError(MSG_PRECISION.format(value=requested, valid=", ".join(PRECISIONS)))
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        config = {}
    stored = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    checkpoint = str(stored) if stored else None
    resolved = _DTYPES.get(checkpoint or "", "fp32") if requested == "auto" else requested
    if resolved == "bf16" and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ModelLoadError(MSG_BF16_GPU.format(device=device))
    return resolved, checkpoint


def _load_torch(
    path: Path, task: str, device: str, weights: Weights, precision: str
) -> tuple[Any, Any, str]:
    """Load (model, tokenizer, linear backend) from a checked folder, never with remote code."""
    import torch
    from transformers import AutoTokenizer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    with _quiet_transformers():
        model, info = _model_class(task).from_pretrained(
            str(path),
            dtype=dtype,
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
    # same results; oneDNN only where this machine runs float32 matmuls faster through it
    backend = pick_linear_backend(model) if device == "cpu" else "stock"
    return model, tokenizer, backend


def _context_window(model: Any, tokenizer: Any) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 1_000_000 else None


def load_huggingface(
    *,
    path: Path,
    task: str,
    positive_label: int | str | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    max_tokens: int | None = None,
    device: str | None = None,
    allow_hub: bool = False,
    threshold: float = 0.5,
    precision: str = "auto",
    prompt: PromptConfig | Mapping[str, Any] | None = None,
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
        Inference batch size (halved on CUDA out-of-memory) and truncation length
        (default 256 tokens; a causal LM: its context window, at most 4096).
    max_tokens
        Optional token budget per batch (texts x the longest one's tokens), on top
        of ``batch_size``: long texts then go fewer to a batch.
    device, allow_hub
        ``cpu``, ``cuda``, ``cuda:1`` ...; default CUDA when available. Accept a Hub
        id (resolved from the local cache when ``HF_HUB_OFFLINE`` is set).
    threshold
        text-classification and prompted causal-lm: ``predict`` is ``score >= threshold``.
    precision
        ``auto`` (the checkpoint's dtype, else fp32) | ``fp32`` | ``bf16`` | ``fp16``:
        the dtype the weights are loaded and run in (no autocast).
    prompt
        causal-lm only: the decision prompt (:class:`probes.models.prompt.PromptConfig`).

    The torch model is cached per process by (fingerprint, task, device, precision).
    """
    if task not in TASKS:
        raise ModelLoadError(MSG_BAD_TASK.format(task=task, valid=", ".join(TASKS)))
    if batch_size < 1:
        raise ModelLoadError(f"model.batch_size: must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ModelLoadError(f"model.max_tokens: must be >= 1 or None, got {max_tokens}")
    if prompt is not None and task != "causal-lm":
        raise ModelLoadError(MSG_PROMPT_TASK.format(task=task))
    folder = resolve_model_folder(Path(path), allow_hub)
    weights = check_model_folder(folder)
    try:
        dev = pick_device(device)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    if dev == "cpu":
        configure_cpu_threads()
    resolved, checkpoint = resolve_precision(folder, precision, dev)
    sha = fingerprint(folder)
    model, tokenizer, backend = MODEL_CACHE.get_or_load(
        (sha, task, dev, resolved), lambda: _load_torch(folder, task, dev, weights, resolved)
    )
    common: dict[str, Any] = {
        "path": folder,
        "task": task,
        "sha256": sha,
        "device": dev,
        "model": model,
        "tokenizer": tokenizer,
        "batch_size": batch_size,
        "max_length": max_length or DEFAULT_MAX_LENGTH,
        "max_tokens": max_tokens,
        "precision": resolved,
        "linear_backend": backend,
        "precision_info": _precision_info(precision, resolved, checkpoint, dev, backend),
    }
    return _adapter(task, common, positive_label, threshold, max_length, prompt)


def _precision_info(
    requested: str, resolved: str, checkpoint: str | None, device: str, backend: str
) -> dict[str, Any]:
    """What the manifest records about the precision a model ran in."""
    return {
        "requested": requested,
        "resolved": resolved,
        "checkpoint_dtype": checkpoint,
        "device": device,
        "autocast": False,
        "linear_backend": backend,
    }


def _adapter(
    task: str,
    common: dict[str, Any],
    positive_label: int | str | None,
    threshold: float,
    max_length: int | None,
    prompt: PromptConfig | Mapping[str, Any] | None,
) -> HuggingFaceAdapter:
    if task == "text-classification":
        return TextClassificationAdapter.create(
            positive_label=positive_label, threshold=threshold, **common
        )
    if task == "fill-mask":
        return FillMaskAdapter(**common)
    if task == "embedding":
        pooling, normalize, st_max = read_sentence_transformers_config(common["path"])
        limit = common["max_length"]
        common["max_length"] = min(limit, st_max) if st_max else limit
        return EmbeddingAdapter(pooling=pooling, normalize=normalize, **common)
    context = _context_window(common["model"], common["tokenizer"])
    if max_length is None:
        common["max_length"] = min(context or CAUSAL_MAX_LENGTH, CAUSAL_MAX_LENGTH)
    if prompt is not None and not isinstance(prompt, PromptConfig):
        try:
            prompt = PromptConfig.model_validate(dict(prompt))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            field = f"model.prompt.{where}" if where else "model.prompt"
            msg = str(first["msg"]).removeprefix("Value error, ")
            raise ModelLoadError(msg if msg.startswith("model.") else f"{field}: {msg}") from None
    return CausalLMAdapter(prompt=prompt, threshold=threshold, context=context, **common)
