"""Compare two results documents metric by metric, and say which changes are significant.

Pure functions over results.json documents (no database): ``biasaudit diff``
and ``GET /v1/audits/{a}/compare/{b}`` both call :func:`compare_results`.

Which test decides "significant" (at ``ALPHA`` = 0.05):

- ``selection_rate`` of a group, where both documents carry the counts
  (``n``, ``selected``): a two-sided **two-proportion z-test** with the pooled
  proportion (equal to Pearson's chi-squared test on the 2x2 table without
  continuity correction);
- any other metric that carries a confidence interval in both documents
  (``<metric>_ci``, e.g. ``impact_ratio_ci``, ``tpr_ci``): **non-overlapping
  CIs** (a conservative test: disjoint 95% intervals imply p < 0.05);
- otherwise ``significant`` is ``null`` (no test possible), never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

ALPHA = 0.05
_SKIP = {"group", "levels", "n", "selected", "share", "insufficient_data", "p_value"}
Key = tuple[str, str | None, str | None, str]


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of the pooled two-proportion z-test of x1/n1 against x2/n2."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("n: both samples need at least one row")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = x2 / n2 - x1 / n1
    if se == 0:
        return 0.0, 1.0 if diff == 0 else 0.0
    z = diff / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _ci(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = _number(value[0]), _number(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def metric_values(document: Mapping[str, Any]) -> dict[Key, dict[str, Any]]:
    """Every numeric metric of a document: (probe, attribute, group, metric) -> value, CI, counts.

    Group metrics come from ``probes[].groups[]``; probe-level ones from
    ``probes[].summary`` (group None).
    """
    out: dict[Key, dict[str, Any]] = {}
    for probe in document.get("probes") or []:
        kind, attribute = str(probe.get("kind")), probe.get("attribute")
        for group in probe.get("groups") or []:
            name = group.get("group")
            for metric, value in group.items():
                number = _number(value)
                if metric in _SKIP or metric.endswith(("_ci", "_adjusted")) or number is None:
                    continue
                entry: dict[str, Any] = {"value": number, "ci": _ci(group.get(f"{metric}_ci"))}
                if metric == "selection_rate":
                    entry["counts"] = (group.get("selected"), group.get("n"))
                out[(kind, attribute, name, metric)] = entry
        summary = probe.get("summary")
        if isinstance(summary, Mapping):
            for metric, value in summary.items():
                number = _number(value)
                if number is not None and not metric.endswith("_ci"):
                    ci = _ci(summary.get(f"{metric}_ci"))
                    out[(kind, attribute, None, metric)] = {"value": number, "ci": ci}
    return out


def _test(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    counts_a, counts_b = a.get("counts"), b.get("counts")
    if counts_a and counts_b and all(isinstance(c, int) and c >= 0 for c in counts_a + counts_b):
        (x1, n1), (x2, n2) = counts_a, counts_b
        if n1 > 0 and n2 > 0:
            _, p = two_proportion_z(x1, n1, x2, n2)
            return {"test": "two-proportion z", "p_value": p, "significant": p < ALPHA}
    if a["ci"] is not None and b["ci"] is not None:
        (lo1, hi1), (lo2, hi2) = a["ci"], b["ci"]
        disjoint = hi1 < lo2 or hi2 < lo1
        return {"test": "non-overlapping CIs", "p_value": None, "significant": disjoint}
    return {"test": None, "p_value": None, "significant": None}


def _rows(a: dict[Key, Any], b: dict[Key, Any]) -> Iterator[dict[str, Any]]:
    for key in sorted(set(a) & set(b), key=lambda k: tuple("" if p is None else p for p in k)):
        probe, attribute, group, metric = key
        left, right = a[key], b[key]
        yield {
            "probe": probe,
            "attribute": attribute,
            "group": group,
            "metric": metric,
            "a": left["value"],
            "b": right["value"],
            "change": right["value"] - left["value"],
            "a_ci": list(left["ci"]) if left["ci"] else None,
            "b_ci": list(right["ci"]) if right["ci"] else None,
            **_test(left, right),
        }


def _finding_key(f: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return tuple(str(f.get(k)) for k in ("probe", "attribute", "group", "metric"))  # type: ignore[return-value]


def _status_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    before = {_finding_key(f): f.get("status") for f in a.get("findings") or []}
    after = {_finding_key(f): f.get("status") for f in b.get("findings") or []}
    return [
        {"probe": k[0], "attribute": k[1], "group": k[2], "metric": k[3],
         "a": before.get(k), "b": after.get(k)}
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]  # fmt: skip


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric the two documents share, side by side (b minus a), with its test.

    Returns ``{"verdict": {"a", "b", "changed"}, "metrics": [...], "findings": [...],
    "significant": n, "only_in_a": n, "only_in_b": n, "alpha": ALPHA}`` where each
    metric row holds ``probe, attribute, group, metric, a, b, change, a_ci, b_ci,
    test, p_value, significant`` and ``findings`` lists checks whose status changed.
    """
    left, right = metric_values(a), metric_values(b)
    rows = list(_rows(left, right))
    return {
        "verdict": {
            "a": a.get("verdict"),
            "b": b.get("verdict"),
            "changed": a.get("verdict") != b.get("verdict"),
        },
        "alpha": ALPHA,
        "metrics": rows,
        "significant": sum(1 for r in rows if r["significant"]),
        "findings": _status_changes(a, b),
        "only_in_a": len(set(left) - set(right)),
        "only_in_b": len(set(right) - set(left)),
    }


def impact_ratio_points(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each group's impact ratio with its CI (demographic-style probes): a history point."""
    points = []
    for probe in document.get("probes") or []:
        for group in probe.get("groups") or []:
            value = _number(group.get("impact_ratio"))
            if value is None:
                continue
            ci = _ci(group.get("impact_ratio_ci"))
            points.append(
                {
                    "probe": str(probe.get("kind")),
                    "attribute": probe.get("attribute"),
                    "group": group.get("group"),
                    "impact_ratio": value,
                    "ci": list(ci) if ci else None,
                    "n": group.get("n"),
                }
            )
    return points
