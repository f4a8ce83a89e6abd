"""Display primitives for the HTML audit report: value formatting and inline SVG charts.

Numbers are formatted here once, so the tables and the charts agree (rates with
3 decimals, small p-values in scientific notation, missing values as "—"), and
so are group names, for the report and its LL144 summary alike.
Charts are built as strings so the report stays a single self-contained file
that prints well (no JavaScript, no external assets). Every piece of text taken
from results goes through :func:`html.escape`; the geometry is exposed as
constants so tests can check positions (e.g. the four-fifths line).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

# Geometry (user units of the viewBox; the SVG scales to the page width).
LABEL_WIDTH = 240  # left column holding the group names
PLOT_LEFT = 250  # x of the zero line
PLOT_WIDTH = 380  # x extent of the value axis
VALUE_LEFT = PLOT_LEFT + PLOT_WIDTH + 14  # right column holding "rate [lo, hi]"
WIDTH = VALUE_LEFT + 220
ROW_HEIGHT = 26
BAR_HEIGHT = 14
TOP = 30
BOTTOM = 40
MAX_LABEL_CHARS = 36

COLOR_BAR = "#3b6ea5"
COLOR_FAIL = "#c0392b"
COLOR_INSUFFICIENT = "#9aa3ad"
COLOR_TEXT = "#1d2530"
COLOR_MUTED = "#5b6672"
COLOR_GRID = "#e3e7eb"
FOUR_FIFTHS = 0.8

DASH = "—"
_ABBREV = {
    **{
        k: k.upper() for k in ("tpr", "fpr", "fnr", "tnr", "npv", "auc", "ci", "id", "weat", "seat")
    },
    "sha256": "SHA-256",
}
_LABELS = {"p_value": "p-value", "p_value_adjusted": "p-value (Holm)", "n": "n"}


def num(x: Any) -> float | None:
    """``x`` as a finite float, or None (missing, NaN, infinite, bool or not a number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def fmt_rate(x: Any) -> str:
    """Rates, ratios and scores: 3 decimals."""
    v = num(x)
    return DASH if v is None else f"{v:.3f}"


def fmt_signed(x: Any) -> str:
    """Differences (score gaps, deltas): 3 decimals with an explicit sign."""
    v = num(x)
    return DASH if v is None else f"{v:+.3f}"


def fmt_p(x: Any) -> str:
    """p-values: 3 decimals, scientific notation below 0.001."""
    v = num(x)
    if v is None:
        return DASH
    if v == 0:
        return "< 1e-300"
    return f"{v:.2e}" if v < 1e-3 else f"{v:.3f}"


def fmt_ci(ci: Any) -> str:
    """A ``[lo, hi]`` interval, or "—" when either end is missing."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return DASH
    lo, hi = num(ci[0]), num(ci[1])
    return DASH if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"


def fmt_int(x: Any) -> str:
    """Counts with thousands separators."""
    v = num(x)
    if v is None:
        return DASH
    return f"{int(v):,}" if v.is_integer() else f"{v:,.3f}"


def fmt_pct(x: Any) -> str:
    v = num(x)
    return DASH if v is None else f"{100 * v:.1f}%"


def fmt_date(x: Any, *, day: bool = False) -> str:
    """ISO timestamps as ``YYYY-MM-DD HH:MM UTC`` (or the date only); other text as is."""
    if not x:
        return DASH
    try:
        t = datetime.fromisoformat(str(x))
    except ValueError:
        return str(x)
    if day:
        return t.date().isoformat()
    if t.tzinfo is None:
        return t.strftime("%Y-%m-%d %H:%M")
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_value(x: Any) -> str:
    """Any JSON value for display: numbers as above, containers compactly, None as "—"."""
    if x is None:
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        v = num(x)
        if v is None:
            return DASH
        return f"{v:.3f}" if v == 0 or 1e-3 <= abs(v) < 1e6 else f"{v:.3e}"
    if isinstance(x, (list, tuple)) and all(not isinstance(i, (Mapping, list)) for i in x):
        return "[" + ", ".join(fmt_value(i) for i in x) + "]"
    if isinstance(x, (Mapping, list, tuple)):
        return json.dumps(x, sort_keys=True, default=str)
    return str(x)


def fmt_exact(x: Any) -> str:
    """Exact value for the reproducibility tables: text as is, anything else as JSON."""
    if x is None:
        return DASH
    if isinstance(x, str):
        return x
    return json.dumps(x, sort_keys=True, ensure_ascii=False, default=str)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys (``privileged.disparate_impact``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def metric_label(key: str) -> str:
    """``equal_opportunity_difference`` -> "Equal opportunity difference"; ``tpr`` -> "TPR"."""
    if key in _LABELS:
        return _LABELS[key]
    if not key or any(c.isupper() for c in key):
        return key or DASH
    first, *rest = key.split("_")
    words = [_ABBREV.get(first, first.capitalize())] + [_ABBREV.get(w, w) for w in rest]
    return " ".join(words)


def group_label(group: Mapping[str, Any], *, intersection: bool = False) -> str:
    """Readable group name: intersections joined with " × " (from ``levels`` if given)."""
    levels = group.get("levels")
    if isinstance(levels, Mapping) and len(levels) > 1:
        return " × ".join(str(v) for v in levels.values())
    name = str(group.get("group", DASH))
    return name.replace("&", " × ") if intersection else name


def has_metric(groups: list[Mapping[str, Any]], key: str) -> bool:
    """True when any group has a value for ``key`` (a table column worth showing)."""
    return any(g.get(key) is not None for g in groups)


def excluded_label(x: Any, *, intersection: bool = False) -> str:
    """An ``excluded_groups`` item (a name, or a mapping with group/n/share) for display."""
    if not isinstance(x, Mapping):
        return fmt_value(x)
    name = group_label(x, intersection=intersection) if "group" in x else str(x.get("name", DASH))
    return f"{name} (n = {fmt_int(x.get('n'))}, {fmt_pct(x.get('share'))})"


@dataclass(frozen=True)
class Bar:
    """One group's bar: the rate, its CI and how to draw it."""

    label: str
    value: float | None
    ci: tuple[float | None, float | None] | None = None
    failing: bool = False
    insufficient: bool = False
    reference: bool = False


def axis_max(bars: Sequence[Bar]) -> tuple[float, float]:
    """A round upper bound of the value axis in (0, 1] and its tick step.

    Rates are proportions, so the axis never goes past 1; small rates get a
    tighter axis so the bars stay readable.
    """
    top = 0.0
    for b in bars:
        for x in (b.value, *(b.ci or ())):
            v = num(x)
            if v is not None:
                top = max(top, v)
    for step in (0.01, 0.02, 0.05, 0.1, 0.2):
        ticks = max(1, math.ceil(top / step - 1e-9))
        if ticks <= 6 and ticks * step <= 1.0 + 1e-9:
            return min(1.0, ticks * step), step
    return 1.0, 0.2


def _x(value: float, xmax: float) -> float:
    return PLOT_LEFT + PLOT_WIDTH * max(0.0, min(value, xmax)) / xmax


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def reference_rate(bars: Sequence[Bar]) -> float | None:
    """The rate impact ratios divide by: the reference bar's, else the highest.

    The highest rate is taken among groups with enough data when there are any
    (a tiny group's noisy rate should not set the bar), as the engine does.
    """
    for b in bars:
        if b.reference and num(b.value) is not None:
            return num(b.value)
    rates = [num(b.value) for b in bars if not b.insufficient] or [num(b.value) for b in bars]
    found = [r for r in rates if r is not None]
    return max(found) if found else None


def _axis(xmax: float, step: float, plot_h: float) -> list[str]:
    """Grid lines, tick labels and the axis title."""
    out = []
    for i in range(round(xmax / step) + 1):
        v = i * step
        x = _x(v, xmax)
        out.append(
            f'<line x1="{x:.2f}" y1="{TOP}" x2="{x:.2f}" y2="{TOP + plot_h}" '
            f'stroke="{COLOR_GRID}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{x:.2f}" y="{TOP + plot_h + 15}" text-anchor="middle" '
            f'fill="{COLOR_MUTED}">{v:.2f}</text>'
        )
    out.append(
        f'<text x="{PLOT_LEFT + PLOT_WIDTH / 2:.2f}" y="{TOP + plot_h + 33}" '
        f'text-anchor="middle" fill="{COLOR_MUTED}">selection rate (bars: 95% CI)</text>'
    )
    return out


def _bar_row(i: int, b: Bar, xmax: float) -> list[str]:
    """One group: its label, bar, CI error bar and value text."""
    y = TOP + i * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2
    cy = y + BAR_HEIGHT / 2
    color = COLOR_FAIL if b.failing else COLOR_INSUFFICIENT if b.insufficient else COLOR_BAR
    weight = ' font-weight="600"' if b.failing or b.reference else ""
    out = [
        f'<text x="{LABEL_WIDTH}" y="{cy + 4:.2f}" text-anchor="end" '
        f'fill="{COLOR_FAIL if b.failing else COLOR_TEXT}"{weight}>'
        f"<title>{escape(b.label)}</title>{escape(_short(b.label))}</text>"
    ]
    classes = "bar" + (" fail" if b.failing else "") + (" insufficient" if b.insufficient else "")
    opacity = ' fill-opacity="0.55"' if b.insufficient else ""
    value = num(b.value)
    if value is not None:
        w = _x(value, xmax) - PLOT_LEFT
        out.append(
            f'<rect class="{classes}" data-group="{escape(b.label)}" x="{PLOT_LEFT}" '
            f'y="{y:.2f}" width="{w:.2f}" height="{BAR_HEIGHT}" fill="{color}"'
            f"{opacity}/>"
        )
    lo_v, hi_v = (num(b.ci[0]), num(b.ci[1])) if b.ci else (None, None)
    if lo_v is not None and hi_v is not None:
        lo, hi = _x(lo_v, xmax), _x(hi_v, xmax)
        out.append(
            f'<g class="errorbar" stroke="{COLOR_TEXT}" stroke-width="1.2">'
            f'<line x1="{lo:.2f}" y1="{cy:.2f}" x2="{hi:.2f}" y2="{cy:.2f}"/>'
            f'<line x1="{lo:.2f}" y1="{cy - 4:.2f}" x2="{lo:.2f}" y2="{cy + 4:.2f}"/>'
            f'<line x1="{hi:.2f}" y1="{cy - 4:.2f}" x2="{hi:.2f}" y2="{cy + 4:.2f}"/></g>'
        )
    note = " FAIL" if b.failing else " (small n)" if b.insufficient else ""
    ci = f" {fmt_ci(b.ci)}" if fmt_ci(b.ci) != DASH else ""
    out.append(
        f'<text x="{VALUE_LEFT}" y="{cy + 4:.2f}" fill="{color if note else COLOR_TEXT}">'
        f'{fmt_rate(b.value)}<tspan fill="{COLOR_MUTED}">{ci}</tspan>{note}</text>'
    )
    return out


def _four_fifths(top: float, xmax: float, plot_h: float, ref_name: str | None) -> list[str]:
    """The dashed line at 0.8 x the reference rate, with its label."""
    ref = FOUR_FIFTHS * top
    x = _x(ref, xmax)
    anchor = "end" if x > PLOT_LEFT + PLOT_WIDTH * 0.6 else "start"
    dx = -4 if anchor == "end" else 4
    return [
        f'<line class="four-fifths" x1="{x:.2f}" y1="{TOP - 6}" x2="{x:.2f}" '
        f'y2="{TOP + plot_h}" stroke="{COLOR_TEXT}" stroke-width="1.5" '
        f'stroke-dasharray="5 3" data-value="{ref:.6f}"/>',
        f'<text x="{x + dx:.2f}" y="{TOP - 10}" text-anchor="{anchor}" '
        f'fill="{COLOR_TEXT}">four-fifths line: 0.8 × '
        f"{escape(_short(ref_name)) if ref_name else 'highest'} = {ref:.3f}</text>",
    ]


def selection_rate_chart(bars: Sequence[Bar], *, title: str) -> str:
    """Horizontal bar chart of rates with CI error bars and the four-fifths line.

    The dashed vertical line sits at 0.8 x the reference rate (see
    :func:`reference_rate`; the EEOC four-fifths rule of thumb): a bar ending left
    of it has an impact ratio below 0.8. Failing groups are drawn in red and
    marked "FAIL" (not by colour alone).
    """
    xmax, step = axis_max(bars)
    plot_h = ROW_HEIGHT * max(1, len(bars))
    height = TOP + plot_h + BOTTOM
    top = reference_rate(bars)
    ref_name = next((b.label for b in bars if b.reference), None)
    out: list[str] = [
        f'<svg class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" font-family="system-ui, sans-serif" '
        f'font-size="12" data-xmax="{xmax:g}">',
        f"<title>{escape(title)}</title>",
        *_axis(xmax, step, plot_h),
    ]
    for i, b in enumerate(bars):
        out += _bar_row(i, b, xmax)
    if top:
        out += _four_fifths(top, xmax, plot_h, ref_name)
    out.append(
        f'<line x1="{PLOT_LEFT}" y1="{TOP - 2}" x2="{PLOT_LEFT}" y2="{TOP + plot_h}" '
        f'stroke="{COLOR_MUTED}" stroke-width="1"/>'
    )
    out.append("</svg>")
    return "".join(out)
