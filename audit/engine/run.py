"""The audit engine: spec -> data -> probes -> policy -> results (+ storage, report).

The same ``run_audit`` serves the CLI (embedded mode), the Python API and the
Celery workers. Outputs are written to temporary files and renamed only when
everything succeeded, so a half-written result is never reported as success.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from audit.engine import data as data_mod
from audit.engine.manifest import build_manifest
from audit.engine.policy import findings_for, resolved_thresholds, verdict
from audit.engine.proxy import proxy_posteriors
from audit.engine.spec import AuditSpec, parse_spec, validate_probe_configs
from audit.errors import AuditCancelled, AuditInputError
from audit.settings import get_settings
from probes.base import CountContext, ProbeEntry, ProbeError, ProbeInput, get_probe
from probes.counts import GroupCounts, check_levels
from probes.inference import InferenceCancelled

SCHEMA_VERSION = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load_model(spec: AuditSpec, base_dir: Path) -> Any:
    if spec.model.kind == "predictions":
        return None
    from probes.models import load_model

    path = None
    if spec.model.path:
        path = Path(spec.model.path)
        if not path.is_absolute():
            path = base_dir / path
    allow_hub = get_settings().allow_hub_models
    return load_model(
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


def _model_info(spec: AuditSpec, model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _uses_dataset(spec: AuditSpec) -> bool:
    return bool(spec.dataset.path or spec.dataset.id)


def _chunked_entries(
    spec: AuditSpec, path: Path, configs: list[Any], min_size: int
) -> tuple[list[ProbeEntry], int, dict[str, int]]:
    """Count-only audit of a file too large for memory: counts add across chunks."""
    from probes.counts import count_groups

    total = None
    rows = 0
    unknown: dict[str, int] = {c: 0 for c in spec.dataset.protected}
    chunk_rows = get_settings().chunk_rows
    max_levels = spec.policy.max_levels
    chunks = data_mod.iter_chunks(spec.dataset, path, chunk_rows=chunk_rows)
    with closing(chunks):  # the file is closed also when a chunk is refused
        for raw, offset in chunks:
            frame, y_true, y_pred, _, unk = data_mod.prepare(
                raw, spec.dataset, need_prediction=True, row_offset=offset, max_levels=max_levels
            )
            assert y_pred is not None
            part = count_groups(
                frame,
                list(spec.dataset.protected),
                y_pred=y_pred,
                y_true=y_true,
                weight=data_mod.frame_weight(frame, spec.dataset),
            )
            total = part if total is None else total + part
            refuse_levels(total, max_levels, partial=True)  # each chunk may be under, not all
            rows += len(frame)
            for k, v in unk.items():
                unknown[k] += v
    if total is None:
        raise AuditInputError(f"dataset.path: {path.name} has no rows", field="dataset.path")
    return entries_from_total(spec, configs, total), rows, unknown


def refuse_levels(total: GroupCounts, max_levels: int, *, partial: bool = False) -> None:
    """Merged counts (chunks, shards) with a column over ``policy.max_levels``: input error."""
    try:
        check_levels(total, max_levels, partial=partial)
    except ProbeError as exc:
        raise AuditInputError(str(exc), field="dataset.protected") from None


def entries_from_total(spec: AuditSpec, configs: list[Any], total: GroupCounts) -> list[ProbeEntry]:
    """Entries of every count-based probe config from merged full-intersection counts."""
    context = CountContext(
        min_group_size=spec.policy.min_group_size,
        privileged={k: str(v) for k, v in spec.dataset.privileged.items()},
        seed=spec.seed,
        max_groups=spec.policy.max_groups,
        max_total_groups=spec.policy.max_total_groups,
        unknown_label=spec.dataset.unknown_label,
        reference={k: str(v) for k, v in spec.dataset.reference.items()},
    )
    entries: list[ProbeEntry] = []
    for cfg in configs:
        cls = get_probe(cfg.kind)
        attrs = cls.count_attributes(cfg, spec.dataset.protected)
        try:
            entries += cls().entries_from_counts(total.marginal(attrs), config=cfg, context=context)
        except ProbeError as exc:  # an input error (privileged value, too many groups)
            raise AuditInputError(str(exc)) from None
    return entries


def count_only(configs: list[Any]) -> bool:
    """True when every probe derives all its metrics from merged counts (chunks, shards)."""
    return bool(configs) and all(get_probe(c.kind).from_counts for c in configs)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def compute_results(
    spec_source: dict[str, Any] | str | Path,
    *,
    audit_id: str | None = None,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the probes and policy; return the results.json document (nothing stored)."""
    started = _now()
    spec, spec_dir = parse_spec(spec_source)
    base = base_dir or spec_dir
    configs = [
        c.model_copy(update={"strata": spec.dataset.strata})
        if spec.dataset.strata and getattr(c, "strata", "unset") is None
        else c
        for c in validate_probe_configs(spec)
    ]
    min_size = spec.policy.min_group_size
    try:
        model = _load_model(spec, base)
    except ProbeError as exc:
        raise AuditInputError(str(exc), field="model.path") from None
    for i, cfg in enumerate(configs):
        cls = get_probe(cfg.kind)
        if "model" in cls.needs and model is None:
            raise AuditInputError(
                f"probes[{i}].kind: probe {cfg.kind!r} needs a model; set model.kind "
                "(sklearn | huggingface) and model.path",
                field=f"probes[{i}].kind",
            )
    entries: list[ProbeEntry] = []
    dataset_info: dict[str, Any] = {"sha256": None, "rows": 0}
    unknown: dict[str, int] = {}
    path = data_mod.resolve_path(spec.dataset, base) if _uses_dataset(spec) else None
    chunked = (
        path is not None
        and model is None
        and count_only(configs)
        and not spec.dataset.score
        and spec.dataset.proxy is None  # the proxy needs every row's names in memory
        and path.stat().st_size > get_settings().chunk_bytes
    )
    if chunked and path is not None:
        entries, rows, unknown = _chunked_entries(spec, path, configs, min_size)
        dataset_info = {"sha256": data_mod.file_sha256(path), "rows": rows, "chunked": True}
    else:
        frame = None
        y_true = y_pred = score = None
        if path is not None:
            ds = data_mod.load_dataset(
                spec.dataset,
                base,
                need_prediction=spec.model.kind == "predictions",
                max_levels=spec.policy.max_levels,
            )
            frame, y_true, y_pred, score, unknown = (
                ds.frame,
                ds.y_true,
                ds.y_pred,
                ds.score,
                ds.unknown_counts,
            )
            dataset_info = {"sha256": ds.sha256, "rows": int(len(frame)), "path": ds.path.name}
            if spec.model.kind in ("sklearn", "onnx") and model is not None:
                try:
                    y_pred = np.asarray(model.predict(frame), dtype=bool)
                    if score is None:
                        score = model.score(frame)
                except ProbeError as exc:
                    raise AuditInputError(str(exc)) from None
        import pandas as pd

        pinput = ProbeInput(
            frame=frame if frame is not None else pd.DataFrame(),
            protected=tuple(spec.dataset.protected),
            y_pred=y_pred,
            y_true=y_true,
            score=score,
            favorable_label=spec.dataset.favorable_label,
            privileged={k: str(v) for k, v in spec.dataset.privileged.items()},
            strata=spec.dataset.strata,
            domain=spec.domain,
            seed=spec.seed,
            min_group_size=min_size,
            max_groups=spec.policy.max_groups,
            max_total_groups=spec.policy.max_total_groups,
            unknown_label=spec.dataset.unknown_label,
            weight=None if frame is None else data_mod.frame_weight(frame, spec.dataset),
            reference={k: str(v) for k, v in spec.dataset.reference.items()},
            outcome=spec.dataset.outcome,
            proxy=None if frame is None else proxy_posteriors(frame, spec.dataset),
            progress=None,
            should_cancel=should_cancel,
        )
        for i, cfg in enumerate(configs):
            if should_cancel is not None and should_cancel():
                raise AuditCancelled("audit cancelled")
            cls = get_probe(cfg.kind)
            sub_progress = None
            if progress is not None:

                def sub_progress(f: float, i: int = i) -> None:
                    progress((i + min(max(f, 0.0), 1.0)) / len(configs))

            probe_input = (
                pinput
                if sub_progress is None
                else ProbeInput(**{**pinput.__dict__, "progress": sub_progress})
            )
            try:
                result = cls().run(data=probe_input, model=model, config=cfg)
            except ProbeError as exc:
                raise AuditInputError(str(exc)) from None
            except InferenceCancelled:
                raise AuditCancelled("audit cancelled") from None
            entries.extend(result.entries)
            if progress is not None:
                progress((i + 1) / len(configs))
    model_info, precision = _model_info(spec, model)
    return assemble_results(
        spec,
        configs,
        entries,
        audit_id=audit_id or str(uuid.uuid4()),
        started_at=started,
        model_info=model_info,
        dataset_info=dataset_info,
        unknown_counts=unknown,
        manifest_extra={"precision": precision} if precision else None,
    )


def assemble_results(
    spec: AuditSpec,
    configs: list[Any],
    entries: list[ProbeEntry],
    *,
    audit_id: str,
    started_at: str,
    model_info: dict[str, Any],
    dataset_info: dict[str, Any],
    unknown_counts: dict[str, int],
    manifest_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Policy, verdict and manifest around the probe entries: the results.json document."""
    min_size = spec.policy.min_group_size
    findings = findings_for(entries, spec, min_group_size=min_size)
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "audit": {
            "id": audit_id,
            "name": spec.name,
            "domain": spec.domain,
            "spec_sha256": spec.sha256(),
            "started_at": started_at,
            "finished_at": _now(),
        },
        "model": model_info,
        "dataset": dataset_info,
        "probes": [e.model_dump(mode="json") for e in entries],
        "findings": [f.model_dump(mode="json") for f in findings],
        "verdict": verdict(findings),
        "manifest": build_manifest(
            seed=spec.seed,
            thresholds=resolved_thresholds(spec),
            min_group_size=min_size,
            favorable_label=spec.dataset.favorable_label,
            unknown_label=spec.dataset.unknown_label,
            unknown_counts=unknown_counts,
            groups={e.attribute: [g["group"] for g in e.groups] for e in entries},
            excluded_groups={
                e.attribute: e.model_extra.get("excluded_groups", [])
                for e in entries
                if e.model_extra and e.model_extra.get("excluded_groups")
            },
            probes=[c.model_dump(mode="json") for c in configs],
            spec=spec.model_dump(mode="json"),
            **(manifest_extra or {}),
        ),
    }
    return json.loads(json.dumps(results, allow_nan=False, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_outputs(
    results: dict[str, Any], out_dir: Path, *, html: str | None = None
) -> dict[str, Path]:
    """Write results.json and report.html (``html``, else rendered) atomically into ``out_dir``."""
    from audit.reports.html import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    html = render_html(results) if html is None else html
    text = json.dumps(results, indent=2, sort_keys=False)
    paths = {"results": out_dir / "results.json", "report": out_dir / "report.html"}
    _write_atomic(paths["report"], html)
    _write_atomic(paths["results"], text)
    return paths


def run_audit(
    spec: dict[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    *,
    store: bool = True,
    project: str = "default",
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run one audit in-process and return the results.json document.

    Parameters
    ----------
    spec : dict or path to a YAML/JSON spec (see docs/spec.md).
    out_dir : where to write ``results.json`` and ``report.html`` (optional).
    store : record the audit, its results and findings in the database
        (``BIASAUDIT_DATABASE_URL``; SQLite under the artifact dir by default).

    Examples
    --------
    >>> from audit import run_audit                       # doctest: +SKIP
    >>> results = run_audit("biasaudit-demo/hiring/spec.yaml")   # doctest: +SKIP
    >>> results["verdict"]                                # doctest: +SKIP
    'fail'
    """
    parsed, base = parse_spec(spec)
    source = parsed.model_dump(mode="json")
    recorder = None
    audit_id = str(uuid.uuid4())
    if store:
        from audit.engine.embedded import EmbeddedRecorder

        recorder = EmbeddedRecorder.start(parsed, project=project)
        audit_id = recorder.audit_id
    written: dict[str, Path] = {}
    try:
        results = compute_results(source, audit_id=audit_id, progress=progress, base_dir=base)
        reports: dict[str, str] = {}
        if out_dir is not None:  # rendered once: written, and stored with the results
            from audit.reports.html import render_html

            reports["html"] = render_html(results)
            written = write_outputs(results, Path(out_dir), html=reports["html"])
        if recorder is not None:
            recorder.succeed(results, reports=reports)
    except BaseException as exc:
        for path in written.values():  # never leave a result that looks like success
            path.unlink(missing_ok=True)
        if recorder is not None:
            recorder.fail(exc)
        raise
    return results
