"""Hugging Face model adapters: local folders only, no remote code, no unsafe pickles.

:func:`load_huggingface` checks the folder before transformers sees it:

- the path must be a local folder (a Hub id is refused unless ``allow_hub``; then
  it is resolved to a local snapshot, from the cache only when ``HF_HUB_OFFLINE``
  is set, and checked like any folder);
- ``trust_remote_code`` is never passed as True, and a folder that asks for remote
  code (``auto_map`` in a config file) or ships ``.py`` files is refused;
- ``*.safetensors`` weights are preferred; a ``pytorch_model.bin`` is first read
  with ``torch.load(weights_only=True)`` (the restricted unpickler that never runs
  code) and refused when that fails, then loaded by transformers with
  ``weights_only=True`` as well.

Every adapter runs its forward passes through :func:`probes.inference.run_batched`
(dedupe, length sort, batches, OOM halving, progress, cancel).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from probes.inference import (
    MODEL_CACHE,
    configure_cpu_threads,
    inference_context,
    pad_batch,
    pick_device,
    run_batched,
    use_onednn_linear,
)
from probes.models.fingerprint import fingerprint
from probes.models.safety import ModelLoadError, UnsafeModelError

__all__ = [
    "CausalLMAdapter",
    "EmbeddingAdapter",
    "FillMaskAdapter",
    "HuggingFaceAdapter",
    "TextClassificationAdapter",
    "check_model_folder",
    "load_huggingface",
]

MSG_NOT_FOUND = "model.path: folder not found: {path}"
MSG_HUB_ID = (
    "model.path: folder not found: {path}; if {path!r} is a Hugging Face Hub id: biasaudit "
    "loads local folders only, so download it first (e.g. `hf download {path} --local-dir "
    "DIR`) and set model.path to DIR"
)
MSG_NOT_FOLDER = "model.path: {path} is a file; a Hugging Face model is a folder with config.json"
MSG_NO_CONFIG = "model.path: {path} has no config.json; is it a Hugging Face model folder?"
MSG_REMOTE_CODE = (
    "model.path: {file} asks for custom code (auto_map); biasaudit never runs code shipped "
    "with a model (trust_remote_code is always off). Use a model whose architecture is built "
    "into transformers"
)
MSG_PY_FILE = (
    "model.path: {file} is Python code inside the model folder; biasaudit never runs code "
    "shipped with a model (trust_remote_code is always off). Remove the .py files or use a "
    "model whose architecture is built into transformers"
)
MSG_UNSAFE_PICKLE = (
    "model.path: {file} is a pickle that safe loading (torch.load with weights_only=True) "
    "refuses, so it may run code when loaded: {reason}. Convert it to model.safetensors "
    "with a trusted tool, or use the safetensors weights of the model"
)
MSG_NO_WEIGHTS = (
    "model.path: no weights in {path}; expected model.safetensors (or a sharded "
    "model.safetensors.index.json), or pytorch_model.bin"
)
MSG_BAD_TASK = "model.task: {task!r} is not supported; valid tasks: {valid}"
MSG_MISSING_WEIGHTS = (
    "model.path: {path} has no trained weights for {keys} (task {task!r}); is it a {task} "
    "model? Check model.task"
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")


@dataclass(frozen=True)
class Weights:
    """Which weight files a checked folder will load."""

    format: str  # "safetensors" | "bin"
    files: tuple[Path, ...]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _resolve(path: Path, allow_hub: bool) -> Path:
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(MSG_NOT_FOLDER.format(path=path))
        return path
    text = str(path)
    if not _HUB_ID.match(text) or text.startswith((".", "/")):
        raise ModelLoadError(MSG_NOT_FOUND.format(path=path))
    if not allow_hub:
        raise ModelLoadError(MSG_HUB_ID.format(path=text))
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(
            repo_id=text,
            local_files_only=_offline(),
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.bin", "*/*.json"],
        )
    except Exception as exc:  # noqa: BLE001 - hub errors vary; the message says which
        where = "in the local cache (HF_HUB_OFFLINE is set)" if _offline() else "on the Hub"
        raise ModelLoadError(f"model.path: could not find {text!r} {where}: {exc}") from None
    return Path(local)


def _check_no_code(path: Path) -> None:
    for p in sorted(path.rglob("*.py")):
        raise UnsafeModelError(MSG_PY_FILE.format(file=p))
    for name in _CODE_CONFIGS:
        cfg = path / name
        if not cfg.is_file():
            continue
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"model.path: {cfg} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "auto_map" in data:
            raise UnsafeModelError(MSG_REMOTE_CODE.format(file=cfg))


def _shards(path: Path, index_name: str) -> tuple[Path, ...]:
    index = json.loads((path / index_name).read_text(encoding="utf-8"))
    names = sorted(set(index.get("weight_map", {}).values()))
    return tuple(path / n for n in names)


def verify_torch_pickle(file: Path) -> None:
    """Raise :class:`UnsafeModelError` unless ``file`` loads with the restricted unpickler.

    ``weights_only=True`` only rebuilds tensors and plain containers; any other
    global (``os.system``, a ``__reduce__`` payload, ...) is rejected before it
    runs. Tensors go to the ``meta`` device, so nothing large is read.
    """
    import pickle

    import torch

    try:
        torch.load(file, map_location="meta", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeModelError(MSG_UNSAFE_PICKLE.format(file=file, reason=reason)) from None


def check_model_folder(path: Path) -> Weights:
    """Refuse remote code and unsafe pickles; return the weights that will be loaded."""
    if not (path / "config.json").is_file():
        raise ModelLoadError(MSG_NO_CONFIG.format(path=path))
    _check_no_code(path)
    if (path / "model.safetensors").is_file():
        return Weights("safetensors", (path / "model.safetensors",))
    if (path / "model.safetensors.index.json").is_file():
        return Weights("safetensors", _shards(path, "model.safetensors.index.json"))
    if (path / "pytorch_model.bin.index.json").is_file():
        files = _shards(path, "pytorch_model.bin.index.json")
    elif (path / "pytorch_model.bin").is_file():
        files = (path / "pytorch_model.bin",)
    else:
        raise ModelLoadError(MSG_NO_WEIGHTS.format(path=path))
    for f in files:
        verify_torch_pickle(f)
    return Weights("bin", files)


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
    folder = _resolve(Path(path), allow_hub)
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


# ---------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------

TASKS = ("text-classification", "fill-mask", "embedding", "causal-lm")
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

    def info(self) -> dict[str, Any]:
        """What results.json ``model`` records about this model."""
        return {
            "kind": self.kind,
            "sha256": self.sha256,
            "task": self.task,
            "architecture": type(self.model).__name__,
            "device": self.device,
            "max_length": self.max_length,
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


@dataclass(eq=False)
class CausalLMAdapter(HuggingFaceAdapter):
    """Causal language model: ``log_likelihood`` sums the token log-probabilities."""

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
