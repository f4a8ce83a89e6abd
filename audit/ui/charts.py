"""The history page's trend chart: each group's impact ratio over runs, with 95% CIs.

Plain SVG strings like :mod:`audit.reports.svg` (whose colours and number
formats it shares); every label is escaped here, so the template may output
the SVG as markup. Series are told apart by colour *and* by a marker shape
and a legend, not by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from audit.reports.svg import COLOR_GRID, COLOR_MUTED, COLOR_TEXT, FOUR_FIFTHS

WIDTH = 760
LEFT = 52
RIGHT = 200  # legend column
TOP = 20
PLOT_H = 220
BOTTOM = 46
# Okabe-Ito colours (distinguishable with colour-vision deficiencies), dark enough on white.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9", "#000000", "#e69f00")
TICK = 0.2
MARKERS = ("circle", "square", "diamond", "triangle")


@dataclass(frozen=True)
class Point:
    """One run's value of a series (None: not measured in that run) and its CI."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Series:
    """A group's impact ratio across the runs (one point per run, in run order)."""

    label: str
    points: Sequence[Point]


def _marker(kind: str, x: float, y: float, color: str) -> str:
    if kind == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{color}"/>'
    if kind == "diamond":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} '
            f'{x - 5:.1f},{y:.1f}" fill="{color}"/>'
        )
    if kind == "triangle":
        return (
            f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} '
            f'{x - 5:.1f},{y + 4:.1f}" fill="{color}"/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"/>'


def _ymax(series: Sequence[Series]) -> float:
    """The top of the value axis: the highest value or CI end, up to the next 0.2 (>= 1.2)."""
    top = max(
        (v for s in series for p in s.points for v in (p.value, p.high) if v is not None),
        default=1.0,
    )
    return max(1.2, math.ceil(float(top) / TICK) * TICK)


def trend_chart(series: Sequence[Series], run_labels: Sequence[str], *, title: str) -> str:
    """A line chart: x = runs (oldest first), y = impact ratio, whiskers = 95% CI,
    and the dashed four-fifths (0.8) line."""
    n = max(1, len(run_labels))
    plot_w = WIDTH - LEFT - RIGHT
    ymax = _ymax(series)

    def x_of(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / n)

    def y_of(v: float) -> float:
        return TOP + PLOT_H * (1 - v / ymax)

    out = [
        f'<svg class="chart trend" role="img" viewBox="0 0 {WIDTH} {TOP + PLOT_H + BOTTOM}" '
        f'width="100%" font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(round(ymax / TICK) + 1):
        v = k * TICK
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}" '
            f'stroke="{COLOR_GRID}"/><text x="{LEFT - 6}" y="{y_of(v) + 4:.1f}" '
            f'text-anchor="end" fill="{COLOR_MUTED}">{v:.2f}</text>'
        )
    out.append(
        f'<line class="four-fifths" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y_of(FOUR_FIFTHS):.1f}" '
        f'y2="{y_of(FOUR_FIFTHS):.1f}" stroke="{COLOR_TEXT}" stroke-dasharray="5 3"/>'
        f'<text x="{LEFT + plot_w - 4}" y="{y_of(FOUR_FIFTHS) - 5:.1f}" text-anchor="end" '
        f'fill="{COLOR_TEXT}">four-fifths (0.8)</text>'
    )
    for i, label in enumerate(run_labels):
        out.append(
            f'<text x="{x_of(i):.1f}" y="{TOP + PLOT_H + 16}" text-anchor="middle" '
            f'fill="{COLOR_MUTED}">{escape(label)}</text>'
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + PLOT_H + 38}" text-anchor="middle" '
        f'fill="{COLOR_MUTED}">run (oldest left) · impact ratio with 95% CI · dashed: 0.8</text>'
    )
    for k, s in enumerate(series):
        out.append(_series(s, k, x_of, y_of))
        color, marker = PALETTE[k % len(PALETTE)], MARKERS[k % len(MARKERS)]
        ly = TOP + 10 + 18 * k
        out.append(
            _marker(marker, LEFT + plot_w + 20, ly, color)
            + f'<text x="{LEFT + plot_w + 30}" y="{ly + 4}" fill="{COLOR_TEXT}">'
            f"{escape(s.label[:26])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _series(s: Series, k: int, x_of: object, y_of: object) -> str:
    assert callable(x_of) and callable(y_of)
    color, marker = PALETTE[k % len(PALETTE)], MARKERS[k % len(MARKERS)]
    parts = [f'<g class="series" data-group="{escape(s.label)}">']
    line = [
        f"{x_of(i):.1f},{y_of(p.value):.1f}" for i, p in enumerate(s.points) if p.value is not None
    ]
    if len(line) > 1:
        parts.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="{color}" stroke-width="2"/>'
        )
    for i, p in enumerate(s.points):
        if p.low is not None and p.high is not None:
            x = x_of(i)
            parts.append(
                f'<line class="ci" x1="{x:.1f}" x2="{x:.1f}" y1="{y_of(p.low):.1f}" '
                f'y2="{y_of(p.high):.1f}" stroke="{color}" stroke-width="1.2"/>'
            )
        if p.value is not None:
            parts.append(_marker(marker, x_of(i), y_of(p.value), color))
    parts.append("</g>")
    return "".join(parts)
