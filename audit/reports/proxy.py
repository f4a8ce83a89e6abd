"""The report's race-proxy section: how race was estimated and what that does to the results.

When an audit estimates race from names and geography (``dataset.proxy``, BISG or
BIFSG), a reviewer needs more than the group table: which method and geography, how
many rows the census tables actually matched (and which fell back to less evidence),
the probability-weighted estimates beside the posterior >= 0.8 threshold assignment,
the multiple-imputation intervals, and the method's known bias. Everything is read
from an entry's ``summary.proxy`` block (any probe that writes one), so the section
is rebuilt from results.json alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from audit.reports.svg import DASH, fmt_ci, fmt_int, fmt_p, fmt_pct, fmt_rate, fmt_value, num

METHODS = {
    "bisg": "BISG (Bayesian Improved Surname Geocoding: surname and geography)",
    "bifsg": "BIFSG (Bayesian Improved First name and Surname Geocoding: first name, "
    "surname and geography)",
}
GEOGRAPHY = {"zcta": "ZIP code tabulation area (ZCTA)", "tract": "census tract"}

# (coverage field, label, what the posterior used for these rows)
COVERAGE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("both_matched", "Surname and geography found", "full evidence"),
    ("surname_only", "Surname found, geography not", "fallback: surname with the national prior"),
    ("geography_only", "Geography found, surname not", "fallback: geography alone"),
    ("neither", "Neither found", "fallback: the national race distribution"),
)

CAVEAT = (
    "Race here is estimated, not recorded. BISG and BIFSG are calibrated on average but "
    "each applicant counts in every group in proportion to a probability, so "
    "probability-weighted estimates spread each group's outcomes over the others: they are "
    "known to understate disparities (impact ratios nearer 1, smaller gaps). Assigning race "
    "only where a posterior reaches 0.8 drops the least certain applicants, who are not "
    "typical of their groups, and can bias the other way. The multiple-imputation estimate "
    "and interval draw race given each applicant's decision, which corrects most of the "
    "attenuation; read them for the size of a gap, and treat the proxy groups' results as "
    "evidence to investigate rather than as measured outcomes of individuals. Names and "
    "places missing from the census tables get less informative posteriors."
)


def _size(x: Any) -> str:
    """A (weighted) size: thousands separators, one decimal when not whole."""
    v = num(x)
    if v is None:
        return DASH
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"


def proxy_entries(entries: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The entries carrying a proxy block (``summary.proxy`` with its coverage)."""
    for e in entries:
        summary = e.get("summary")
        if isinstance(summary, Mapping) and isinstance(summary.get("proxy"), Mapping):
            yield e


def _coverage(proxy: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = num(proxy.get("rows")) or 0.0

    def row(label: str, count: Any, note: str) -> dict[str, str]:
        value = num(count)
        share = value / rows if rows and value is not None else None
        return {"label": label, "n": fmt_int(count), "share": fmt_pct(share), "note": note}

    out = [
        row("Surname found in the census surname list", proxy.get("surname_matched"), ""),
        row(
            "… of which by one part of a compound name",
            proxy.get("surname_matched_by_part"),
            "e.g. the first part of a hyphenated surname",
        ),
    ]
    if proxy.get("first_name_matched") is not None:
        out.append(row("First name found", proxy.get("first_name_matched"), ""))
    out.append(row("Geography found", proxy.get("geography_matched"), ""))
    out += [row(label, proxy.get(key), note) for key, label, note in COVERAGE_ROWS]
    return out


def _group_rows(entry: Mapping[str, Any], threshold: Mapping[str, Any]) -> list[dict[str, str]]:
    found = threshold.get("groups")
    by_threshold: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    rows = []
    for g in entry.get("groups") or []:
        if not isinstance(g, Mapping):
            continue
        t = by_threshold.get(str(g.get("group"))) or {}
        rows.append(
            {
                "group": fmt_value(g.get("group")),
                "n": _size(g.get("n")),
                "n_effective": _size(g.get("n_effective")),
                "rate": fmt_rate(g.get("selection_rate", g.get("mean"))),
                "weighted": fmt_rate(g.get("impact_ratio")),
                "mi": fmt_rate(g.get("impact_ratio_mi")),
                "mi_ci": fmt_ci(g.get("impact_ratio_ci")),
                "p": fmt_p(g.get("p_value_adjusted", g.get("p_value"))),
                "t_n": _size(t.get("n")),
                "t_rate": fmt_rate(t.get("selection_rate")),
                "t_ratio": fmt_rate(t.get("impact_ratio")),
                "reference": "yes" if g.get("group") == entry.get("reference_group") else "",
            }
        )
    return rows


def proxy_section(entries: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The section's context (None when no entry used a proxy): method, coverage, the
    weighted, imputed and threshold results side by side, and the caveat."""
    found = list(proxy_entries(entries))
    if not found:
        return None
    # the entry with the group comparison (threshold results) first, else any with coverage
    entry = next(
        (e for e in found if isinstance(e["summary"]["proxy"].get("threshold"), Mapping)), found[0]
    )
    proxy: Mapping[str, Any] = entry["summary"]["proxy"]
    threshold: Mapping[str, Any] = proxy.get("threshold") or {}
    method = str(proxy.get("method") or "")
    level = str(proxy.get("geography_level") or "")
    cut = num(threshold.get("threshold"))
    return {
        "method": METHODS.get(method, method or DASH),
        "geography": GEOGRAPHY.get(level, level or "none"),
        "rows": fmt_int(proxy.get("rows")),
        "coverage": _coverage(proxy),
        "attribute": fmt_value(entry.get("attribute")),
        "reference": fmt_value(entry.get("reference_group")),
        "imputations": fmt_value(proxy.get("imputations")),
        "threshold": DASH if cut is None else f"{cut:g}",
        "assigned_share": fmt_pct(threshold.get("assigned_share")),
        "threshold_reference": fmt_value(threshold.get("reference_group")),
        "groups": _group_rows(entry, threshold) if threshold else [],
        "caveat": CAVEAT,
    }
