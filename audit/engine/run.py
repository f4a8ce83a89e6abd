"""The audit engine: spec -> data -> probes -> policy -> results (+ storage, report).

The same ``run_audit`` serves the CLI (embedded mode), the Python API and the
Celery workers. ``data=`` (a DataFrame) and ``model=`` (a fitted estimator, or a
transformers model and tokenizer) replace the spec's files for notebook users
(:mod:`audit.engine.inmemory`). Outputs are written atomically
(:mod:`audit.engine.outputs`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from audit.engine import columnar, reader
from audit.engine import data as data_mod
from audit.engine.counted import count_only, entries_from_total
from audit.engine.integrity import dataset_digest
from audit.engine.models import load_spec_model as _load_model
from audit.engine.models import model_info as _model_info
from audit.engine.outputs import (
    SCHEMA_VERSION,
    assemble_results,
    now,
    write_outputs,
)
from audit.engine.proxy import chunked_proxy, proxy_posteriors
from audit.engine.result import AuditResult
from audit.engine.spec import AuditSpec, parse_spec, validate_probe_configs
from audit.errors import AuditCancelled, AuditInputError
from audit.settings import get_settings
from probes.base import ProbeEntry, ProbeError, ProbeInput, get_probe
from probes.inference import InferenceCancelled

__all__ = [
    "SCHEMA_VERSION",
    "AuditResult",
    "assemble_results",
    "compute_results",
    "count_only",
    "entries_from_total",
    "run_audit",
    "write_outputs",
]

Step = Callable[[str], None]
CHUNKS_ABOVE = 4  # files of more rows than this many chunks are read in chunks


def _uses_dataset(spec: AuditSpec) -> bool:
    return bool(spec.dataset.path or spec.dataset.id)


def _large(spec: AuditSpec, path: Path) -> bool:
    """Read in chunks: the file is above ``BIASAUDIT_CHUNK_BYTES``, or holds more than
    ``CHUNKS_ABOVE`` chunks of ``BIASAUDIT_CHUNK_ROWS`` rows (Parquet footer; a CSV
    file's rows estimated from its first MiB): a compact 20M-row Parquet file of 21 MB
    read whole took 1.5 GB."""
    settings = get_settings()
    if path.stat().st_size > settings.chunk_bytes:
        return True
    rows = reader.estimate_rows(spec.dataset, path)
    return rows is not None and rows > CHUNKS_ABOVE * settings.chunk_rows


def _chunked_entries(
    spec: AuditSpec, path: Path, configs: list[Any], should_cancel: Callable[[], bool] | None
) -> tuple[list[ProbeEntry], int, dict[str, int]]:
    """Count-only audit of a file too large for memory: the whole file as one shard,
    counted and merged exactly as the shards of a sharded audit are (with
    ``dataset.proxy``, each chunk's posteriors are kept for the imputations)."""
    from audit.engine.sharding import merge_checked

    chunk_rows = get_settings().chunk_rows
    if spec.dataset.proxy is not None:
        total, proxy, rows, unknown = chunked_proxy(spec, path, chunk_rows=chunk_rows)
        return entries_from_total(spec, configs, total, proxy=proxy), rows, unknown
    part = data_mod.count_chunks(
        spec.dataset,
        path,
        chunk_rows=chunk_rows,
        max_levels=spec.policy.max_levels,
        should_cancel=should_cancel,
    )
    total, rows, unknown = merge_checked(spec, [part], path)
    return entries_from_total(spec, configs, total), rows, unknown


def compute_results(
    spec_source: dict[str, Any] | str | Path,
    *,
    audit_id: str | None = None,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    base_dir: Path | None = None,
    step: Step | None = None,
    data: Any = None,
    model: Any = None,
    artifacts: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Run the probes and policy; return the results.json document (nothing stored).

    ``step`` is told each long step as it starts (the CLI shows it); ``data`` (a
    pandas DataFrame) and ``model`` (an in-memory model) replace ``dataset.path``
    and ``model.path``; probe files (name -> bytes) go into ``artifacts``."""
    started = now()
    say: Step = step or (lambda _label: None)
    spec, spec_dir = parse_spec(spec_source)
    base = base_dir or spec_dir
    configs = [
        c.model_copy(update={"strata": spec.dataset.strata})
        if spec.dataset.strata and getattr(c, "strata", "unset") is None
        else c
        for c in validate_probe_configs(spec)
    ]
    if spec.model.kind != "predictions" or model is not None:
        say(f"loading model ({spec.model.kind})")
    try:
        if model is not None:
            from audit.engine.inmemory import adapt_model

            loaded = adapt_model(model, spec)
        else:
            loaded = _load_model(spec, base)
    except ProbeError as exc:
        raise AuditInputError(str(exc), field="model.path") from None
    _check_model_needed(configs, loaded)
    entries, dataset_info, unknown = _run_probes(
        spec,
        configs,
        loaded,
        base,
        frame_in=data,
        progress=progress,
        should_cancel=should_cancel,
        say=say,
        artifacts=artifacts,
    )
    say("policy and findings")
    model_info, precision = _model_info(spec, loaded)
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


def _check_model_needed(configs: list[Any], model: Any) -> None:
    for i, cfg in enumerate(configs):
        if "model" in get_probe(cfg.kind).needs and model is None:
            raise AuditInputError(
                f"probes[{i}].kind: probe {cfg.kind!r} needs a model; set model.kind "
                "(sklearn | huggingface) and model.path",
                field=f"probes[{i}].kind",
            )


def _load_data(
    spec: AuditSpec, base: Path, frame_in: Any, model: Any, say: Step
) -> tuple[ProbeInput, dict[str, Any], dict[str, int]]:
    """The probe input: the dataset (file or DataFrame), predicted by the model if tabular."""
    import pandas as pd

    frame = None
    y_true = y_pred = score = None
    unknown: dict[str, int] = {}
    dataset_info: dict[str, Any] = {"sha256": None, "rows": 0}
    need_prediction = spec.model.kind == "predictions"
    if frame_in is not None:
        from audit.engine.inmemory import frame_dataset

        say(f"checking the DataFrame ({len(frame_in)} rows)")
        ds = frame_dataset(
            spec.dataset,
            frame_in,
            need_prediction=need_prediction,
            max_levels=spec.policy.max_levels,
        )
    elif _uses_dataset(spec):
        say(f"loading dataset {spec.dataset.path}")
        ds = data_mod.load_dataset(
            spec.dataset,
            base,
            need_prediction=need_prediction,
            max_levels=spec.policy.max_levels,
        )
    else:
        ds = None
    if ds is not None:
        frame, y_true, y_pred, score = ds.frame, ds.y_true, ds.y_pred, ds.score
        unknown = ds.unknown_counts
        dataset_info = {"sha256": ds.sha256, "rows": int(len(frame)), "path": ds.path.name}
        if spec.model.kind in ("sklearn", "onnx") and model is not None:
            say(f"predicting {len(frame)} rows with the model")
            try:
                y_pred = np.asarray(model.predict(frame), dtype=bool)
                if score is None:
                    score = model.score(frame)
            except ProbeError as exc:
                raise AuditInputError(str(exc)) from None
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
        min_group_size=spec.policy.min_group_size,
        max_groups=spec.policy.max_groups,
        max_total_groups=spec.policy.max_total_groups,
        unknown_label=spec.dataset.unknown_label,
        label=spec.dataset.label,
        base_dir=base,
        weight=None if frame is None else data_mod.frame_weight(frame, spec.dataset),
        weight_column=spec.dataset.weight,
        reference={k: str(v) for k, v in spec.dataset.reference.items()},
        outcome=spec.dataset.outcome,
        proxy=None if frame is None else proxy_posteriors(frame, spec.dataset),
        proxy_of=None if spec.dataset.proxy is None else partial(_proxy_of, spec=spec),
    )
    return pinput, dataset_info, unknown


def _proxy_of(frame: Any, *, spec: AuditSpec) -> Any:
    """``dataset.proxy`` on another frame (an lda-search training file); input errors
    (a missing name column) are probe errors naming the column."""
    assert spec.dataset.proxy is not None
    missing = [c for _, c in spec.dataset.proxy.columns() if c not in frame.columns]
    if missing:
        raise ProbeError(f"dataset.proxy: the training rows lack column(s) {missing}")
    return proxy_posteriors(frame, spec.dataset)


def _step_label(i: int, n: int, cfg: Any) -> str:
    cls = get_probe(cfg.kind)
    what = "counting groups" if cls.from_counts else "running"
    boot = getattr(cfg, "bootstrap", None)
    extra = f", bootstrap {boot} resamples" if isinstance(boot, int) and boot > 0 else ""
    return f"probe {i + 1}/{n} {cfg.kind}: {what}{extra}"


def _run_probes(
    spec: AuditSpec,
    configs: list[Any],
    model: Any,
    base: Path,
    *,
    frame_in: Any,
    progress: Callable[[float], None] | None,
    should_cancel: Callable[[], bool] | None,
    say: Step,
    artifacts: dict[str, bytes] | None = None,
) -> tuple[list[ProbeEntry], dict[str, Any], dict[str, int]]:
    """Entries of every probe (counts in chunks for a large file), dataset info, unknowns."""
    path = (
        data_mod.resolve_path(spec.dataset, base)
        if frame_in is None and _uses_dataset(spec)
        else None
    )
    if (
        path is not None
        and model is None
        and count_only(configs)
        and not spec.dataset.score
        and _large(spec, path)
    ):
        say(f"counting groups in {path.name}, in chunks")
        copied = columnar.read_from_copy(spec.dataset, path)  # an upload's columnar copy
        digest = dataset_digest(spec.dataset, path)  # verified before any counting
        counted, rows, unknown = _chunked_entries(spec, path, configs, should_cancel)
        info = {"sha256": digest, "rows": rows, "path": path.name}
        info["chunked"] = True
        if copied:
            info["columnar"] = True
        return counted, info, unknown
    pinput, info, unknown = _load_data(spec, base, frame_in, model, say)
    entries: list[ProbeEntry] = []
    for i, cfg in enumerate(configs):
        if should_cancel is not None and should_cancel():
            raise AuditCancelled("audit cancelled")
        say(_step_label(i, len(configs), cfg))
        sub_progress = None
        if progress is not None:

            def sub_progress(f: float, i: int = i) -> None:
                progress((i + min(max(f, 0.0), 1.0)) / len(configs))

        probe_input = ProbeInput(
            **{**pinput.__dict__, "progress": sub_progress, "should_cancel": should_cancel}
        )
        try:
            result = get_probe(cfg.kind)().run(data=probe_input, model=model, config=cfg)
        except ProbeError as exc:
            raise AuditInputError(str(exc)) from None
        except InferenceCancelled:
            raise AuditCancelled("audit cancelled") from None
        entries.extend(result.entries)
        if artifacts is not None:
            artifacts.update(result.artifacts)
        if progress is not None:
            progress((i + 1) / len(configs))
    return entries, info, unknown


def run_audit(
    spec: dict[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    *,
    data: Any = None,
    model: Any = None,
    store: bool = True,
    project: str = "default",
    progress: Callable[[float], None] | None = None,
    step: Step | None = None,
) -> AuditResult:
    """Run one audit in-process and return its results (a mapping equal to results.json).

    Parameters
    ----------
    spec : dict or path to a YAML/JSON spec (see docs/spec.md).
    out_dir : where to write ``results.json`` and ``report.html`` (optional).
    data : a pandas DataFrame audited instead of ``dataset.path`` (which may then be
        left out of the spec).
    model : a fitted scikit-learn estimator or pipeline (``model.kind: sklearn``), or a
        ``(transformers model, tokenizer)`` pair (``model.kind: huggingface``), used
        instead of ``model.path``. The spec's ``model.kind`` may be left out.
    store : record the audit, its results and findings in the database
        (``BIASAUDIT_DATABASE_URL``; SQLite under the artifact dir by default).
    progress, step : told the fraction done and each long step as it starts.

    Examples
    --------
    >>> from audit import run_audit                       # doctest: +SKIP
    >>> results = run_audit("biasaudit-demo/hiring/spec.yaml")   # doctest: +SKIP
    >>> results.verdict                                   # doctest: +SKIP
    'fail'
    """
    if data is not None or model is not None:
        from audit.engine.inmemory import spec_for_objects

        spec = spec_for_objects(spec, data=data, model=model)
    parsed, base = parse_spec(spec)
    source = parsed.model_dump(mode="json")
    recorder = None
    audit_id = str(uuid.uuid4())
    if store:
        from audit.engine.embedded import EmbeddedRecorder

        recorder = EmbeddedRecorder.start(parsed, project=project)
        audit_id = recorder.audit_id
    written: dict[str, Path] = {}
    artifacts: dict[str, bytes] = {}
    try:
        results = compute_results(
            source,
            audit_id=audit_id,
            progress=progress,
            base_dir=base,
            step=step,
            data=data,
            model=model,
            artifacts=artifacts,
        )
        reports: dict[str, str] = {}
        if out_dir is not None:  # rendered once: written, and stored with the results
            from audit.reports.html import render_html

            if step is not None:
                step("writing results.json and report.html")
            reports["html"] = render_html(results)
            written = write_outputs(
                results, Path(out_dir), html=reports["html"], artifacts=artifacts
            )
        if recorder is not None:
            recorder.succeed(results, reports=reports, artifacts=artifacts)
    except BaseException as exc:
        for path in written.values():  # never leave a result that looks like success
            path.unlink(missing_ok=True)
        if recorder is not None:
            recorder.fail(exc)
        raise
    return AuditResult(results)
