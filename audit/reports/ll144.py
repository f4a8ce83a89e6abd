"""The NYC Local Law 144 bias-audit summary of the HTML report (``domain: hiring`` only).

Selection and scoring rates with impact ratios by sex, race/ethnicity and their
intersection; categories under 2% of the data (which 6 RCNY § 5-301 lets an audit
leave out), groups excluded for size and rows of unknown category are listed. Rows the
probe left out of impact ratios (the unknown category always; small categories when
the audit set ``impact_ratio_min_share``) say "excluded from impact ratios" in place of
a ratio.
:func:`audit.reports.html.build_context` puts it under ``ll144`` for the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.reports.svg import (
    DASH,
    excluded_label,
    fmt_date,
    fmt_int,
    fmt_rate,
    fmt_value,
    group_label,
    has_metric,
    num,
)

LL144_SMALL_SHARE = 0.02  # categories under 2% of the data may be excluded (6 RCNY § 5-301)
# the probe marks groups left out of impact ratios (``impact_ratio_excluded``: the unknown
# category, and categories under ``impact_ratio_min_share`` when the audit asks for it)
EXCLUDED = "excluded from impact ratios"
RATIO_KEYS = ("impact_ratio", "scoring_impact_ratio")
_LL144_NAMES = {"sex": "Sex", "race": "Race/Ethnicity"}
_LL144_ORDER = {"sex": 0, "race": 1, "intersectional": 2}


def _ll144_kind(attribute: str) -> str | None:
    """ "sex", "race", "intersectional" (of those only), or None: not in the LL144 summary."""
    kinds = [
        "sex" if "sex" in a or "gender" in a else "race" if "race" in a or "ethnic" in a else None
        for a in attribute.lower().split("&")
    ]
    if None in kinds:
        return None
    return kinds[0] if len(kinds) == 1 else "intersectional"


def _ll144_table(entry: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """One LL144 table (sex, race/ethnicity or their intersection) for one entry."""
    groups = [g for g in entry.get("groups") or [] if isinstance(g, Mapping)]
    attribute = str(entry.get("attribute", ""))
    attrs = [str(a) for a in entry.get("attributes") or attribute.split("&")]
    excluded = [x for x in entry.get("excluded_groups") or [] if x is not None]
    metrics = [("selection_rate", "impact_ratio")] if has_metric(groups, "selection_rate") else []
    if has_metric(groups, "scoring_rate"):
        metrics.append(("scoring_rate", "scoring_impact_ratio"))
    metrics = metrics or [("selection_rate", "impact_ratio")]
    total = sum(num(g.get("n")) or 0 for g in groups)
    inter = kind == "intersectional"
    rows, small, unknown = [], {}, []
    left_out = {str(g.get("group")): g.get("impact_ratio_excluded") for g in groups}
    for g in [*groups, *(x for x in excluded if isinstance(x, Mapping))]:
        share = num(g.get("share"))
        if share is None and total:
            share = (num(g.get("n")) or 0) / total
        if share is not None and share < LL144_SMALL_SHARE:
            label = excluded_label({**g, "share": share}, intersection=inter)
            if left_out.get(str(g.get("group"))):
                label += f" ({EXCLUDED})"
            small[str(g.get("group"))] = label
    for g in groups:
        levels = g.get("levels")
        if not isinstance(levels, Mapping) or not all(a in levels for a in attrs):
            parts = str(g.get("group", DASH)).split("&") if len(attrs) > 1 else [g.get("group")]
            levels = dict(zip(attrs, parts, strict=False))
        reason = g.get("impact_ratio_excluded")
        if (
            any(str(v).lower() == "unknown" for v in levels.values())
            or reason == "unknown category"
        ):
            note = f" ({EXCLUDED})" if reason else ""
            unknown.append(f"{group_label(g)}: {fmt_int(g.get('n'))}{note}")
        rows.append(
            {
                "cells": [str(levels.get(a, DASH)) for a in attrs],
                "n": fmt_int(g.get("n")),
                "rates": [
                    EXCLUDED if reason and k in RATIO_KEYS else fmt_rate(g.get(k))
                    for pair in metrics
                    for k in pair
                ],
                "small": str(g.get("group")) in small,
            }
        )
    labels = {"selection_rate": "Selection rate", "scoring_rate": "Scoring rate"}
    return {
        "kind": kind,
        "heading": f"{_LL144_NAMES.get(kind, 'Intersectional')} categories",
        "attribute": attribute.replace("&", " × "),
        "columns": [_LL144_NAMES.get(_ll144_kind(a) or "", a) for a in attrs],
        "spans": [labels[r].split()[0] for r, _ in metrics] if len(metrics) > 1 else [],
        "rate_headers": [h for r, _ in metrics for h in (labels[r], "Impact ratio")],
        "rows": rows,
        "small": list(small.values()),
        "insufficient": [excluded_label(x, intersection=inter) for x in excluded],
        "min_group_size": fmt_value(entry.get("min_group_size")),
        "unknown": unknown,
    }


def _tags(kind: str) -> tuple[str, ...]:
    from probes.base import ProbeError, get_probe

    try:
        return get_probe(kind).tags
    except ProbeError:
        return ()


def ll144_section(results: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> dict | None:
    """The NYC Local Law 144 bias-audit summary; only for ``domain: hiring``."""
    audit = results.get("audit") or {}
    if (audit.get("domain") or results.get("domain")) != "hiring":
        return None
    demographic = [e for e in entries if "ll144" in _tags(str(e.get("kind")))]
    kinds = [_ll144_kind(str(e.get("attribute", ""))) for e in demographic]
    tables = [_ll144_table(e, k) for e, k in zip(demographic, kinds, strict=True) if k]
    tables.sort(key=lambda t: _LL144_ORDER[t["kind"]])
    dataset = results.get("dataset") or {}
    source = next(
        (dataset[k] for k in ("source", "description", "path", "name", "id") if dataset.get(k)),
        None,
    )
    data_kind = dataset.get("data_type") or dataset.get("data_kind")
    headers = {h for t in tables for h in t["rate_headers"]}
    return {
        "tables": tables,
        "others": [
            str(e.get("attribute")) for e, k in zip(demographic, kinds, strict=True) if not k
        ],
        "date": fmt_date(audit.get("finished_at") or audit.get("started_at"), day=True),
        "source": fmt_value(source),
        "rows": fmt_int(dataset.get("rows")),
        "sha256": fmt_value(dataset.get("sha256")),
        "data_kind": fmt_value(data_kind) if data_kind else None,
        "selection": "Selection rate" in headers or not tables,
        "scoring": "Scoring rate" in headers,
    }
