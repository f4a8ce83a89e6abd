"""In-memory inputs for notebook users: a DataFrame and a fitted model instead of files.

``run_audit(spec, data=frame, model=estimator)`` audits objects the caller already
holds. The file safety rules (no pickle, no remote code) protect a service from
files it did not make; objects passed here are the caller's own and are used as
they are. They are validated like files: the same column checks, the same
"favorable value must occur" rule, the same model adapters
(:class:`probes.models.sklearn.SklearnAdapter`, the Hugging Face task adapters).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from audit.engine import data as data_mod
from audit.engine.spec import AuditSpec, DatasetSpec, load_spec_source
from audit.errors import AuditInputError

FRAME_NAME = "DataFrame"  # dataset.path placeholder and results.json dataset.path
MSG_NOT_A_FRAME = "data: expected a pandas DataFrame, got {type}"
MSG_NOT_A_MODEL = (
    "model: expected a fitted scikit-learn estimator or pipeline (with predict), or a "
    "(transformers model, tokenizer) pair; got {type}"
)


def _is_hf_pair(model: Any) -> bool:
    return isinstance(model, (tuple, list)) and len(model) == 2 and hasattr(model[0], "config")


def spec_for_objects(spec: Any, *, data: Any, model: Any) -> dict[str, Any]:
    """The spec as a dict, completed for in-memory inputs.

    With ``data`` and no ``dataset.path``/``dataset.id``, ``dataset.path`` becomes the
    placeholder ``DataFrame``; with ``model`` and no ``model.kind`` (or ``predictions``)
    the kind follows the object (``sklearn`` or ``huggingface`` with task
    ``text-classification`` unless the spec says otherwise).
    """
    raw, base = load_spec_source(spec)
    out = copy.deepcopy(raw)
    dataset = out.setdefault("dataset", {})
    if not isinstance(dataset, dict):
        return out  # the spec validation names the error
    if data is not None and not (dataset.get("path") or dataset.get("id")):
        dataset["path"] = FRAME_NAME
    elif isinstance(dataset.get("path"), str) and not Path(dataset["path"]).is_absolute():
        dataset["path"] = str(base / dataset["path"])
    if model is not None:
        section = out.setdefault("model", {})
        if isinstance(section, dict):
            if section.get("kind") in (None, "predictions"):
                section["kind"] = "huggingface" if _is_hf_pair(model) else "sklearn"
            if section["kind"] == "huggingface":
                section.setdefault("task", "text-classification")
            section.pop("path", None)
    return out


def _sha256_object(obj: Any) -> str:
    """A fingerprint of an in-memory estimator (its skops serialisation when possible)."""
    try:
        import skops.io as sio

        return hashlib.sha256(sio.dumps(obj)).hexdigest()
    except Exception:  # noqa: BLE001 - an object skops cannot write: hash its description
        return hashlib.sha256(repr(obj).encode()).hexdigest()


def _sha256_torch(module: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).float().numpy().tobytes())
    return h.hexdigest()


def _hf_adapter(pair: Any, spec: AuditSpec) -> Any:
    from probes.models.huggingface import _adapter

    hf_model, tokenizer = pair
    hf_model.eval()
    param = next(iter(hf_model.parameters()), None)
    device = str(param.device) if param is not None else "cpu"
    dtype = str(param.dtype).removeprefix("torch.") if param is not None else "float32"
    precision = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    common: dict[str, Any] = {
        "path": Path("<in-memory>"),
        "task": spec.model.task or "text-classification",
        "sha256": _sha256_torch(hf_model),
        "device": device,
        "model": hf_model,
        "tokenizer": tokenizer,
        "batch_size": spec.model.batch_size,
        "max_length": spec.model.max_length,
        "max_tokens": spec.model.max_tokens,
        "precision": precision,
        "linear_backend": "stock",
        "precision_info": {"requested": "auto", "resolved": precision, "device": device},
    }
    max_length = spec.model.max_length if "max_length" in spec.model.model_fields_set else None
    return _adapter(
        common["task"],
        common,
        spec.model.positive_label,
        spec.model.threshold,
        max_length,
        spec.model.prompt,
    )


def adapt_model(model: Any, spec: AuditSpec) -> Any:
    """The adapter probes call for an in-memory ``model`` (see :func:`spec_for_objects`)."""
    if _is_hf_pair(model):
        return _hf_adapter(model, spec)
    if hasattr(model, "predict") and hasattr(model, "get_params"):
        from probes.models.sklearn import SklearnAdapter

        return SklearnAdapter(
            estimator=model,
            sha256=_sha256_object(model),
            features=spec.model.features,
            favorable_label=spec.dataset.favorable_label,
            threshold=spec.model.threshold,
        )
    if hasattr(model, "kind") and hasattr(model, "sha256"):
        return model  # already an adapter (probes.models)
    raise AuditInputError(MSG_NOT_A_MODEL.format(type=type(model).__name__), field="model")


def frame_sha256(frame: Any) -> str:
    """A content hash of a DataFrame (values, index and column names)."""
    import pandas as pd

    h = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    h.update("\x1f".join(map(str, frame.columns)).encode())
    return h.hexdigest()


def frame_dataset(
    spec: DatasetSpec, frame: Any, *, need_prediction: bool, max_levels: int | None = None
) -> data_mod.LoadedDataset:
    """Validate and type a DataFrame as :func:`audit.engine.data.load_dataset` does a file."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise AuditInputError(MSG_NOT_A_FRAME.format(type=type(frame).__name__), field="data")
    where = Path(FRAME_NAME)
    data_mod.check_columns(spec, where, [str(c) for c in frame.columns])
    if frame.empty:
        raise AuditInputError("data: the DataFrame has no rows", field="data")
    digest = frame_sha256(frame)
    typed = frame.reset_index(drop=True)
    typed.columns = [str(c) for c in typed.columns]
    typed, y_true, y_pred, score, unknown = data_mod.prepare(
        typed, spec, need_prediction=need_prediction, max_levels=max_levels
    )
    data_mod.check_groups(typed, spec, y_true)
    y_pred = None if y_pred is None else np.asarray(y_pred, dtype=bool)
    return data_mod.LoadedDataset(typed, where, digest, y_true, y_pred, score, unknown)
