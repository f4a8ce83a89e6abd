"""The results.json document around probe entries, and writing it (with the report).

Outputs are written to temporary files and renamed only when everything
succeeded, so a half-written result is never reported as success.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from audit.engine.manifest import build_manifest
from audit.engine.policy import findings_for, resolved_thresholds, verdict
from audit.engine.spec import AuditSpec
from probes.base import ProbeEntry

SCHEMA_VERSION = 1


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


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
            "finished_at": now(),
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
    results: dict[str, Any],
    out_dir: Path,
    *,
    html: str | None = None,
    artifacts: dict[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write results.json, report.html (``html``, else rendered) and probe files atomically."""
    from audit.reports.html import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    html = render_html(results) if html is None else html
    text = json.dumps(results, indent=2, sort_keys=False)
    paths = {"results": out_dir / "results.json", "report": out_dir / "report.html"}
    for name, blob in (artifacts or {}).items():
        paths[name] = out_dir / Path(name).name  # a bare file name: never outside out_dir
        _write_atomic(paths[name], blob)
    _write_atomic(paths["report"], html)
    _write_atomic(paths["results"], text)
    return paths
