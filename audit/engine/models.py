"""The spec's model: loaded from ``model.path`` (with the safety checks), and described."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.engine.integrity import check_model
from audit.engine.spec import AuditSpec
from audit.errors import AuditInputError
from audit.settings import get_settings

MSG_MODEL_ID_EMBEDDED = (
    "model.id: names a model stored by the API (POST /v1/models); an audit run here needs "
    "model.path (the .skops file or model folder)"
)


def load_spec_model(spec: AuditSpec, base_dir: Path) -> Any:
    if spec.model.kind == "predictions":
        return None
    from probes.models import load_model

    if spec.model.id and not spec.model.path:
        raise AuditInputError(MSG_MODEL_ID_EMBEDDED, field="model.id")
    path = None
    if spec.model.path:
        path = Path(spec.model.path)
        if not path.is_absolute():
            path = base_dir / path
    allow_hub = get_settings().allow_hub_models
    model = load_model(
        kind=spec.model.kind,
        path=path,
        trusted=spec.model.trusted,
        task=spec.model.task,
        positive_label=spec.model.positive_label,
        features=spec.model.features,
        threshold=spec.model.threshold,
        batch_size=spec.model.batch_size,
        max_tokens=spec.model.max_tokens,
        # unset: the task's default (a causal LM's context window)
        max_length=spec.model.max_length if "max_length" in spec.model.model_fields_set else None,
        device=spec.model.device,
        allow_hub=allow_hub,
        favorable_label=spec.dataset.favorable_label,
        precision=spec.model.precision,
        prompt=spec.model.prompt,
    )
    check_model(spec.model, model)  # an upload's fingerprint, set by the worker
    return model


def model_info(spec: AuditSpec, model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """results.json ``model``, and the precision the model ran in (for the manifest)."""
    info: dict[str, Any] = {"kind": spec.model.kind, "sha256": getattr(model, "sha256", None)}
    if model is not None and spec.model.task:
        info["task"] = spec.model.task
    precision = getattr(model, "precision_info", None) or {}
    if precision:
        info["precision"] = precision["resolved"]
    if spec.model.kind == "predictions":
        info["prediction_column"] = spec.dataset.prediction
    return info, precision
