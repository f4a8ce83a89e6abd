"""Report section of probes with the ``frontier`` layout (lda-search).

A scatter chart of every candidate (lowest impact ratio on x, performance on
y), the Pareto frontier joined by a line, the model in use and the best
alternative marked, the four-fifths line dashed; then the baseline and best
side by side, the features that drive the disparity and the frontier table.
Every text taken from results goes through :func:`html.escape`.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from markupsafe import Markup

from audit.reports.svg import (
    COLOR_BAR,
    COLOR_FAIL,
    COLOR_GRID,
    COLOR_MUTED,
    COLOR_TEXT,
    FOUR_FIFTHS,
    fmt_ci,
    fmt_rate,
    fmt_signed,
    num,
)

W, H = 640, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 24, 44
COLOR_FRONTIER = "#2e8b57"


def _scale(lo: float, hi: float, a: float, b: float):  # type: ignore[no-untyped-def]
    span = hi - lo or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def frontier_chart(entry: Mapping[str, Any], metric: str = "performance") -> str:
    """SVG scatter of performance against lowest impact ratio for every candidate."""
    base = entry.get("baseline") or {}
    alts = [a for a in entry.get("alternatives") or [] if isinstance(a, Mapping)]
    pts = [
        (str(a.get("name")), num(a.get("min_impact_ratio")), num(a.get("performance")))
        for a in [base, *alts]
    ]
    pts_ok = [(n, x, y) for n, x, y in pts if x is not None and y is not None]
    if not pts_ok:
        return ""
    ys = [y for _, _, y in pts_ok]
    # candidates far below the model in use (degenerate grid points) sit on the bottom edge
    y_hi = max(ys)
    y_lo = max(min(ys), min(y_hi - 0.02, (pts_ok[0][2] if pts_ok else y_hi) - 0.1))
    pad = (y_hi - y_lo) * 0.05 or 0.01
    sx = _scale(0.0, 1.0, LEFT, W - RIGHT)
    sy = _scale(y_lo - pad, y_hi + pad, H - BOTTOM, TOP)
    frontier = set(entry.get("frontier") or [])
    best = (entry.get("best") or {}).get("name")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="performance against lowest impact ratio" font-family="sans-serif" '
        f'font-size="11" fill="{COLOR_TEXT}">',
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
        f'stroke="{COLOR_GRID}"/>',
        f'<line x1="{sx(FOUR_FIFTHS):.1f}" y1="{TOP}" x2="{sx(FOUR_FIFTHS):.1f}" '
        f'y2="{H - BOTTOM}" stroke="{COLOR_MUTED}" stroke-dasharray="4 3"/>',
    ]
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(
            f'<text x="{sx(t):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" '
            f'fill="{COLOR_MUTED}">{t:.1f}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle">'
        "lowest impact ratio</text>"
    )
    parts.append(
        f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{escape(metric)}</text>'
    )
    for v in (y_lo, y_hi):
        parts.append(
            f'<text x="{LEFT - 6}" y="{sy(v):.1f}" text-anchor="end" '
            f'fill="{COLOR_MUTED}">{v:.3f}</text>'
        )
    line = sorted((x, y) for n, x, y in pts_ok if n in frontier)
    if len(line) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOR_FRONTIER}"/>')
    for i, (name, x, y) in enumerate(pts_ok):
        is_base, is_best = i == 0 and name == str(base.get("name")), name == best
        color = COLOR_FAIL if is_base else COLOR_FRONTIER if is_best else COLOR_BAR
        r = 5 if is_base or is_best else 3
        fill = color if y >= y_lo else "none"  # hollow: below the plotted range
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(max(y, y_lo - pad)):.1f}" r="{r}" fill="{fill}" '
            f'stroke="{color}" fill-opacity="0.8"><title>{escape(name)}</title></circle>'
        )
        if is_base or is_best:
            label = escape(("model in use" if is_base else f"best: {name}")[:48])
            left = x > 0.6  # labels on the right half run leftwards
            anchor, dx = ("end", -7) if left else ("start", 7)
            parts.append(
                f'<text x="{sx(x) + dx:.1f}" y="{sy(y) - 7:.1f}" text-anchor="{anchor}">'
                f"{label}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _row(r: Mapping[str, Any]) -> dict[str, str]:
    return {
        "name": str(r.get("name", "")),
        "family": str(r.get("family", "")),
        "performance": fmt_rate(r.get("performance")),
        "performance_ci": fmt_ci(r.get("performance_ci")),
        "loss": fmt_signed(r.get("performance_loss")),
        "min_ir": fmt_rate(r.get("min_impact_ratio")),
        "min_ir_ci": fmt_ci(r.get("min_impact_ratio_ci")),
    }


def frontier_section(entry: Mapping[str, Any], status: str | None) -> dict[str, Any]:
    """The template's data for an lda-search entry (``status``: its finding's status)."""
    summary = entry.get("summary") or {}
    records = [a for a in entry.get("alternatives") or [] if isinstance(a, Mapping)]
    alts = {str(a.get("name")): a for a in records}
    frontier = [alts[n] for n in entry.get("frontier") or [] if n in alts]
    best = entry.get("best")
    return {
        "type": "frontier",
        "chart": Markup(
            frontier_chart(entry, str(summary.get("metric") or "performance"))
        ),  # built from escaped parts only
        "baseline": _row(entry.get("baseline") or {}),
        "best": _row(best) if isinstance(best, Mapping) else None,
        "frontier_rows": [_row(r) for r in frontier],
        "drivers": [
            {
                "feature": str(d.get("feature")),
                "gain": fmt_signed(d.get("min_impact_ratio_gain")),
                "gain_ci": fmt_ci(d.get("min_impact_ratio_gain_ci")),
                "loss": fmt_signed(d.get("performance_loss")),
            }
            for d in (entry.get("drivers") or [])[:5]
        ],
        "needed": bool(summary.get("lda_needed")),
        "found": bool(summary.get("lda_found")),
        "metric": str(summary.get("metric", "")),
        "tried": str(summary.get("candidates_tried", "")),
        "model_file": summary.get("best_model_file"),
        "status": status or "none",
        "summary": [],
    }
