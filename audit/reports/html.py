"""HTML audit report: one self-contained file for compliance reviewers and regulators.

The report is rendered from the results.json document alone (so it can be
regenerated from storage at any time), with inline CSS and inline SVG charts:
no scripts, fonts or images are fetched, and it prints cleanly. The verdict
comes first, then the findings, the NYC Local Law 144 summary for hiring
audits (:mod:`audit.reports.ll144`), the race-proxy section when race was estimated
(:mod:`audit.reports.proxy`), per-probe detail and the reproducibility manifest.

Every string taken from the results goes through Jinja2 autoescaping (or
:func:`html.escape` inside the SVG), so group names or texts cannot inject
markup. Missing optional keys render as "—" instead of failing.

Example
-------
>>> from audit.reports.html import render_html
>>> html = render_html({"verdict": "pass", "audit": {"name": "demo"}, "probes": []})
>>> "PASS" in html
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from audit.reports.ll144 import ll144_section
from audit.reports.proxy import proxy_section
from audit.reports.sections import STATUS_LABEL, STATUS_ORDER, StatusIndex, build_section
from audit.reports.summary import review_section, summary_sentence
from audit.reports.svg import (
    DASH,
    flatten,
    fmt_ci,
    fmt_date,
    fmt_exact,
    fmt_int,
    fmt_p,
    fmt_rate,
    fmt_value,
    metric_label,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _status_index(findings: list[Mapping[str, Any]]) -> StatusIndex:
    """Worst finding status per (probe, attribute, group)."""
    out: dict[tuple[str, str, str], str] = {}
    for f in findings:
        key = (str(f.get("probe", "")), str(f.get("attribute", "")), str(f.get("group", "")))
        status = str(f.get("status", ""))
        if key not in out or STATUS_ORDER.get(status, 3) < STATUS_ORDER.get(out[key], 3):
            out[key] = status
    return out


def _header(results: Mapping[str, Any], findings: list[Mapping[str, Any]]) -> dict[str, Any]:
    audit = results.get("audit") or {}
    model = results.get("model") or {}
    dataset = results.get("dataset") or {}
    verdict = str(results.get("verdict") or "").lower()
    counts = {s: sum(1 for f in findings if f.get("status") == s) for s in STATUS_ORDER}
    return {
        "verdict": verdict.upper() if verdict in ("pass", "fail") else "UNKNOWN",
        "verdict_class": verdict if verdict in ("pass", "fail") else "unknown",
        "name": str(audit.get("name") or "Untitled audit"),
        "id": fmt_value(audit.get("id")),
        "domain": fmt_value(audit.get("domain") or results.get("domain")),
        "date": fmt_date(audit.get("finished_at") or audit.get("started_at")),
        "rows": fmt_int(dataset.get("rows")),
        "dataset_sha256": fmt_value(dataset.get("sha256")),
        "model_kind": fmt_value(model.get("kind")),
        "model_sha256": fmt_value(model.get("sha256")),
        "n_findings": len(findings),
        "n_fail": counts["fail"],
        "n_insufficient": counts["insufficient_data"],
        "n_pass": counts["pass"],
    }


def _findings(findings: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Findings as display rows, failed first (stable within a status)."""
    ordered = sorted(findings, key=lambda f: STATUS_ORDER.get(str(f.get("status")), 3))
    rows = []
    for f in ordered:
        threshold = fmt_rate(f.get("threshold"))
        if threshold != DASH:
            threshold = ("≤ " if f.get("direction") == "max" else "≥ ") + threshold
        status = str(f.get("status") or "")
        rows.append(
            {
                "probe": fmt_value(f.get("probe")),
                "attribute": fmt_value(f.get("attribute")),
                "group": fmt_value(f.get("group")).replace("&", " × ")
                if "&" in str(f.get("attribute"))
                else fmt_value(f.get("group")),
                "metric": metric_label(str(f.get("metric") or "")),
                "value": fmt_rate(f.get("value")),
                "threshold": threshold,
                "ci": fmt_ci(f.get("ci")),
                "p_value": fmt_p(f.get("p_value")),
                "status": STATUS_LABEL.get(status, status or DASH)
                + (f" ({f['note']})" if f.get("note") else ""),
                "status_class": status or "unknown",
            }
        )
    return rows


def build_context(
    results: Mapping[str, Any], *, reviews: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Everything the template shows, already formatted as strings (no logic in the template)."""
    findings = [f for f in results.get("findings") or [] if isinstance(f, Mapping)]
    index = _status_index(findings)
    entries = [e for e in results.get("probes") or [] if isinstance(e, Mapping)]
    sections = [build_section(e, index) for e in entries]
    for i, s in enumerate(sections):
        s["anchor"] = f"probe-{i + 1}"
    manifest = results.get("manifest")
    ll144 = ll144_section(results, entries)
    rows = _findings(findings)
    return {
        "h": _header(results, findings),
        "summary": summary_sentence(str(results.get("verdict") or "").lower(), findings),
        "findings": rows,
        "open_findings": [r for r in rows if r["status_class"] != "pass"],
        "passed_findings": [r for r in rows if r["status_class"] == "pass"],
        "ll144": ll144 if ll144 and (ll144["tables"] or ll144["others"]) else None,
        "proxy": proxy_section(entries),
        "sections": sections,
        "reviews": review_section(reviews),
        "manifest": [
            {"key": k, "value": fmt_exact(v)}
            for k, v in flatten(manifest if isinstance(manifest, Mapping) else {}).items()
        ],
        "provenance": [
            {"key": f"{part}.{k}", "value": fmt_exact(v)}
            for part in ("audit", "dataset", "model")
            for k, v in flatten(results.get(part) or {}).items()
        ],
        "schema_version": fmt_value(results.get("schema_version")),
    }


def render_html(
    results: Mapping[str, Any],
    *,
    reviews: Sequence[Mapping[str, Any]] | None = None,
    for_print: bool = False,
) -> str:
    """The audit report as one self-contained HTML document (inline CSS and SVG).

    ``reviews`` (each ``{decision, reviewer, comment, created_at}``, oldest first) adds the
    sign-off section: awaiting review (an empty list), approved or rejected. ``None``
    leaves it out (a report written before anyone could review). ``for_print`` opens the
    collapsed parts (the passed checks), for the PDF.
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be the results.json mapping, got {type(results).__name__}")
    context = build_context(results, reviews=reviews)
    return _env.get_template("report.html.j2").render(**context, for_print=for_print)


def write_report(
    results: Mapping[str, Any], path: Path, *, reviews: Sequence[Mapping[str, Any]] | None = None
) -> Path:
    """Render the report and write it to ``path`` (UTF-8); returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(results, reviews=reviews), encoding="utf-8")
    return path
