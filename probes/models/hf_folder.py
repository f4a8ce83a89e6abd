"""Hugging Face model folders: the safety checks run before transformers sees a folder.

- the path must be a local folder (a Hub id is refused unless ``allow_hub``; then
  it is resolved to a local snapshot, from the cache only when ``HF_HUB_OFFLINE``
  is set, and checked like any folder);
- a folder that asks for remote code (``auto_map`` in a config file) or ships
  ``.py`` files is refused;
- ``*.safetensors`` weights are preferred; a ``pytorch_model.bin`` is first read
  with ``torch.load(weights_only=True)`` (the restricted unpickler that never runs
  code) and refused when that fails.

torch and huggingface_hub are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from probes.models.safety import ModelLoadError, UnsafeModelError

__all__ = ["Weights", "check_model_folder", "verify_torch_pickle"]

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

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json")


@dataclass(frozen=True)
class Weights:
    """Which weight files a checked folder will load."""

    format: str  # "safetensors" | "bin"
    files: tuple[Path, ...]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_model_folder(path: Path, allow_hub: bool) -> Path:
    """The local folder for ``model.path``; a Hub id only when allowed, and only from the cache."""
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
