"""Model loading: one dispatch for every ``model.kind``, safe by default.

Heavy back ends (torch, transformers, onnxruntime) are imported inside the
loader that needs them, never at import time of this package. Every loader
refuses pickle-based files unless the spec says ``model.trusted: true``
(:mod:`probes.models.safety`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probes.base import ModelAdapter
from probes.models.safety import (
    PICKLE_REFUSED,
    ModelLoadError,
    UnsafeModelError,
    check_not_pickle,
    is_pickle_file,
    pickle_files_in,
    resolve_within,
)

MODEL_KINDS = ("predictions", "sklearn", "huggingface", "onnx")

__all__ = [
    "MODEL_KINDS",
    "PICKLE_REFUSED",
    "ModelLoadError",
    "UnsafeModelError",
    "check_not_pickle",
    "is_pickle_file",
    "load_model",
    "pickle_files_in",
    "resolve_within",
]


def _require_path(kind: str, path: Path | None, what: str) -> Path:
    if path is None:
        raise ModelLoadError(f"model.path: required for model.kind {kind!r} ({what})")
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model.path: file not found: {path} ({what})")
    return path


def load_model(
    *,
    kind: str,
    path: Path | None,
    trusted: bool = False,
    task: str | None = None,
    positive_label: int | str | None = None,
    features: list[str] | None = None,
    threshold: float = 0.5,
    batch_size: int = 64,
    max_tokens: int | None = None,
    max_length: int | None = None,
    device: str | None = None,
    allow_hub: bool = False,
    favorable_label: Any = 1,
    precision: str = "auto",
    prompt: Any = None,
) -> ModelAdapter | None:
    """Load the model a spec names and wrap it in an adapter probes can call.

    Parameters
    ----------
    kind
        ``model.kind``: predictions (returns None: the dataset holds the
        decisions), sklearn, huggingface or onnx.
    path
        File or folder of the model (already resolved against the spec's folder).
    trusted
        ``model.trusted``: allow pickle/joblib files (they run code when loaded).
    features, favorable_label, threshold
        Input columns when the model does not record them; the label counted as
        "selected"; the score cut-off (tabular and text classifiers, prompted LMs).
    max_length, precision, prompt
        Hugging Face only: token limit (None: the task's default), the dtype the
        weights run in (``auto`` | ``fp32`` | ``bf16`` | ``fp16``) and, for
        ``task: causal-lm``, the decision prompt (``model.prompt``).

    Raises
    ------
    ModelLoadError
        The message names the ``model.*`` field and what would be valid;
        :class:`UnsafeModelError` for refused pickle files or paths.
    """
    if kind != "huggingface" and (precision != "auto" or prompt is not None):
        what = "model.precision" if precision != "auto" else "model.prompt"
        raise ModelLoadError(f"{what}: only for model.kind huggingface, not {kind!r}")
    tabular = {"features": features, "favorable_label": favorable_label, "threshold": threshold}
    if kind == "predictions":
        return None
    if kind == "sklearn":
        return _load_sklearn(path, trusted=trusted, **tabular)
    if kind == "huggingface":
        return _load_huggingface(
            path,
            task=task,
            positive_label=positive_label,
            batch_size=batch_size,
            max_tokens=max_tokens,
            max_length=max_length,
            device=device,
            allow_hub=allow_hub,
            threshold=threshold,
            precision=precision,
            prompt=prompt,
        )
    if kind == "onnx":
        return _load_onnx(path, trusted=trusted, **tabular)
    raise ModelLoadError(
        f"model.kind: {kind!r} is not supported; valid kinds: {', '.join(MODEL_KINDS)}"
    )


def _load_sklearn(path: Path | None, *, trusted: bool, **tabular: Any) -> ModelAdapter:
    from probes.models.sklearn import SKLEARN_EXTENSIONS, load_sklearn

    p = _require_path("sklearn", path, f"a scikit-learn model: {SKLEARN_EXTENSIONS}")
    return load_sklearn(path=p, trusted=trusted, **tabular)


def _load_huggingface(path: Path | None, *, task: str | None, **options: Any) -> ModelAdapter:
    from probes.models.huggingface import load_huggingface  # torch/transformers inside

    if task is None:
        raise ModelLoadError(
            "model.task: required for model.kind huggingface "
            "(text-classification | fill-mask | embedding | causal-lm)"
        )
    if path is None:
        raise ModelLoadError("model.path: required for model.kind 'huggingface' (a folder)")
    # Folder checks (no custom code; *.bin weights only through torch's restricted
    # weights_only unpickler, which refuses any pickle that imports code) live in
    # probes.models.hf_folder.
    return load_huggingface(path=Path(path), task=task, **options)


def _load_onnx(path: Path | None, *, trusted: bool, **tabular: Any) -> ModelAdapter:
    from probes.models.onnx import load_onnx

    p = _require_path("onnx", path, "an ONNX model file (.onnx)")
    check_not_pickle(p, trusted=trusted)
    return load_onnx(path=p, **tabular)
