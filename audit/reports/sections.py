"""Per-probe sections of the audit report, built from one results entry each.

The probe's registered ``layout`` picks the shape: ``rates`` (group table with
CIs, selection-rate chart, extra and Clarify metrics), ``counterfactual``
(score gaps, flip rates, the inputs that moved most) or a generic table of
every group key. Every value is formatted here; the templates hold no logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from audit.reports.frontier import frontier_section
from audit.reports.legend import clarify_legend
from audit.reports.svg import (
    DASH,
    Bar,
    excluded_label,
    flatten,
    fmt_ci,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_rate,
    fmt_signed,
    fmt_value,
    group_label,
    has_metric,
    metric_label,
    num,
    selection_rate_chart,
)
from probes.base import Probe, ProbeError, get_probe

STATUS_ORDER = {"fail": 0, "insufficient_data": 1, "pass": 2, "not_applicable": 3}
STATUS_LABEL = {
    "fail": "FAIL",
    "insufficient_data": "insufficient data",
    "pass": "pass",
    "not_applicable": "not applicable",
}
MAX_EXAMPLES = 10
MAX_TEXT = 600
# per-group metrics shown in the "additional metrics" table, in this order
EXTRA_GROUP_METRICS: tuple[str, ...] = ("p_value", "base_rate", "fnr", "tnr", "precision")
EXTRA_GROUP_METRICS += ("npv", "accuracy", "auc", "calibration_error")
# rates shown with their CI in the per-group table
_RATE_KEYS: tuple[str, ...] = ("selection_rate", "impact_ratio", "tpr", "fpr", "scoring_rate")
_RATE_KEYS += ("scoring_impact_ratio",)
StatusIndex = Mapping[tuple[str, str, str], str]


def _group_status(entry: Mapping[str, Any], group: Mapping[str, Any], index: StatusIndex) -> str:
    key = (str(entry.get("kind", "")), str(entry.get("attribute", "")), str(group.get("group")))
    status = index.get(key, "")
    if status != "fail" and group.get("insufficient_data"):
        return "insufficient_data"
    return status


def _probe_class(kind: str) -> type[Probe] | None:
    """The registered probe of an entry (None for a kind no longer installed)."""
    try:
        return get_probe(kind)
    except ProbeError:
        return None


def _title(entry: Mapping[str, Any]) -> str:
    kind = str(entry.get("kind") or "probe")
    cls = _probe_class(kind)
    attribute = str(entry.get("attribute") or DASH).replace("&", " × ")
    return f"{cls.title if cls else kind} — {attribute}"


def _summary_rows(summary: Any) -> list[dict[str, str]]:
    if not isinstance(summary, Mapping):
        return []
    return [
        {
            "label": metric_label(k.split(".")[-1])
            + (f" ({', '.join(k.split('.')[:-1])})" if "." in k else ""),
            "key": k,
            "value": _cell(k, v),
        }
        for k, v in flatten(summary).items()
    ]


def _pair(ci: Any) -> tuple[float | None, float | None] | None:
    return (num(ci[0]), num(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def _demographic(entry: Mapping[str, Any], index: StatusIndex) -> dict:
    groups = [g for g in entry.get("groups") or [] if isinstance(g, Mapping)]
    ref = entry.get("reference_group")
    total = sum(num(g.get("n")) or 0 for g in groups)
    extra_keys = [k for k in EXTRA_GROUP_METRICS if has_metric(groups, k)]
    clarify = [flatten(g.get("clarify") or {}) for g in groups]
    clarify_keys = sorted({k for c in clarify for k in c})
    rows, bars, extra_rows, clarify_rows = [], [], [], []
    for g, cl in zip(groups, clarify, strict=True):
        status = _group_status(entry, g, index)
        share = g.get("share")
        if share is None and total:
            share = (num(g.get("n")) or 0) / total
        label = group_label(g)
        is_ref = ref is not None and str(g.get("group")) == str(ref)
        rows.append(
            {
                "group": label,
                "reference": is_ref,
                "n": fmt_int(g.get("n")),
                "share": fmt_pct(share),
                "selected": fmt_int(g.get("selected")),
                "status": STATUS_LABEL.get(status, DASH),
                "status_class": status or "none",
                "p_adj": fmt_p(g.get("p_value_adjusted")),
                **{k: fmt_rate(g.get(k)) for k in _RATE_KEYS},
                **{f"{k}_ci": fmt_ci(g.get(f"{k}_ci")) for k in _RATE_KEYS},
            }
        )
        extra_rows.append(
            {
                "group": label,
                "cells": [(fmt_p if k == "p_value" else fmt_rate)(g.get(k)) for k in extra_keys],
            }
        )
        clarify_rows.append({"group": label, "cells": [fmt_value(cl.get(k)) for k in clarify_keys]})
        bars.append(
            Bar(
                label=label,
                value=num(g.get("selection_rate")),
                ci=_pair(g.get("selection_rate_ci")),
                failing=status == "fail",
                insufficient=status == "insufficient_data",
                reference=is_ref,
            )
        )
    ref_label = next((r["group"] for r in rows if r["reference"]), fmt_value(ref))
    attribute = str(entry.get("attribute", DASH))
    chart = selection_rate_chart(bars, title=f"Selection rate by {attribute}") if bars else ""
    return {
        "type": "rates",
        "title": _title(entry),
        "attribute": attribute,
        "reference": ref_label,
        "rows": rows,
        "has_error_rates": has_metric(groups, "tpr") or has_metric(groups, "fpr"),
        "has_scoring": has_metric(groups, "scoring_rate"),
        "chart": Markup(chart),  # built from escaped strings in report_svg
        "extra_labels": [
            "p-value (unadjusted)" if k == "p_value" else metric_label(k) for k in extra_keys
        ],
        "extra_rows": extra_rows,
        "clarify_keys": clarify_keys,
        "clarify_rows": clarify_rows,
        "summary": _summary_rows(entry.get("summary")),
        "excluded": [
            excluded_label(x, intersection="&" in attribute)
            for x in entry.get("excluded_groups") or []
        ],
        "min_group_size": fmt_value(entry.get("min_group_size")),
    }


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        value = ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items())
    text = DASH if value is None else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "… (truncated)"


def _counterfactual(entry: Mapping[str, Any], index: StatusIndex) -> dict:
    groups = [g for g in entry.get("groups") or [] if isinstance(g, Mapping)]
    ref = entry.get("reference_group")
    rows = []
    for g in groups:
        status = _group_status(entry, g, index)
        rows.append(
            {
                "group": str(g.get("group", DASH)),
                "reference": ref is not None and str(g.get("group")) == str(ref),
                "n": fmt_int(g.get("n")),
                "mean_score": fmt_rate(g.get("mean_score")),
                "mean_score_ci": fmt_ci(g.get("mean_score_ci")),
                "score_gap": fmt_signed(g.get("score_gap")),
                "score_gap_ci": fmt_ci(g.get("score_gap_ci")),
                "flip_rate": fmt_rate(g.get("flip_rate")),
                "flip_rate_ci": fmt_ci(g.get("flip_rate_ci")),
                "p_value": fmt_p(g.get("p_value")),
                "status": STATUS_LABEL.get(status, DASH),
                "status_class": status or "none",
            }
        )
    examples = [e for e in entry.get("examples") or [] if isinstance(e, Mapping)]
    examples.sort(key=lambda e: -abs(num(e.get("delta")) or 0.0))
    return {
        "type": "counterfactual",
        "title": _title(entry),
        "reference": fmt_value(ref),
        "rows": rows,
        "examples": [
            {
                "group": fmt_value(e.get("group")),
                "original": _text(e.get("text", e.get("input"))),
                "counterfactual": _text(e.get("counterfactual")),
                "score": fmt_rate(e.get("score")),
                "counterfactual_score": fmt_rate(e.get("counterfactual_score")),
                "delta": fmt_signed(e.get("delta")),
            }
            for e in examples[:MAX_EXAMPLES]
        ],
        "n_examples": len(examples),
        "summary": _summary_rows(entry.get("summary")),
    }


def _cell(key: str, value: Any) -> str:
    """One value of a generic table: p-values as p-values, long text truncated."""
    if key.endswith("p_value"):
        return fmt_p(value)
    return _text(value) if isinstance(value, str) else fmt_value(value)


def _columns(records: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys and k != "group"]
    return keys


def _generic(entry: Mapping[str, Any], index: StatusIndex) -> dict:
    """Any other probe kind (mlm-stereotype, embedding-association, ...): all group keys."""
    groups = [g for g in entry.get("groups") or [] if isinstance(g, Mapping)]
    flat = [flatten(g) for g in groups]
    keys = _columns(flat)
    examples = [flatten(e) for e in entry.get("examples") or [] if isinstance(e, Mapping)]
    ex_keys = _columns(examples)
    statuses = [_group_status(entry, g, index) for g in groups]
    return {
        "type": "table",
        "title": _title(entry),
        "columns": [metric_label(k) for k in keys],
        "rows": [
            {
                "group": group_label(g),
                "cells": [_cell(k, f.get(k)) for k in keys],
                "status": STATUS_LABEL.get(st, DASH),
                "status_class": st or "none",
            }
            for g, f, st in zip(groups, flat, statuses, strict=True)
        ],
        "example_columns": [metric_label(k) for k in ex_keys],
        "examples": [
            {"group": fmt_value(e.get("group")), "cells": [_cell(k, e.get(k)) for k in ex_keys]}
            for e in examples[:MAX_EXAMPLES]
        ],
        "n_examples": len(examples),
        "summary": _summary_rows(entry.get("summary")),
    }


def _frontier(entry: Mapping[str, Any], index: StatusIndex) -> dict:
    status = _group_status(entry, (entry.get("groups") or [{}])[-1], index)  # the judged row
    summary = _summary_rows(entry.get("summary"))
    return {**frontier_section(entry, status), "title": _title(entry), "summary": summary}


def build_section(entry: Mapping[str, Any], index: StatusIndex) -> dict:
    """One probe entry as the template shows it, with a legend of its Clarify abbreviations."""
    kind = str(entry.get("kind", ""))
    cls = _probe_class(kind)
    layout = cls.layout if cls else "table"
    builders = {"rates": _demographic, "counterfactual": _counterfactual, "frontier": _frontier}
    section = builders.get(layout, _generic)(entry, index)
    section["kind"] = kind
    shown = [*section.get("clarify_keys", []), *section.get("columns", [])]
    section["legend"] = clarify_legend([*shown, *(r["key"] for r in section["summary"])])
    return section
