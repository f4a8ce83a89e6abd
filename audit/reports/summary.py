"""The report's opening sentence and its sign-off (reviews) section.

The sentence says in plain language what a reader must know first: the
verdict, how many checks failed and the worst finding, e.g.
"FAIL: 2 of 9 checks failed; the lowest impact ratio is 0.61 for race=Black
(threshold 0.8)". The sign-off section shows whether the audit is awaiting
review, approved or rejected, and every review.

>>> summary_sentence("fail", [{"status": "fail", "metric": "impact_ratio", "value": 0.61,
...     "threshold": 0.8, "direction": "min", "attribute": "race", "group": "Black"},
...     {"status": "pass", "metric": "impact_ratio", "value": 0.9, "threshold": 0.8}])
'FAIL: 1 of 2 checks failed; the lowest impact ratio is 0.61 for race=Black (threshold 0.8).'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit.reports.svg import DASH, fmt_date, metric_label, num

REVIEW_STATES = {"approve": "approved", "reject": "rejected"}
AWAITING = "awaiting review"


def _margin(f: Mapping[str, Any]) -> float | None:
    """How far a finding is on the wrong side of its threshold (larger is worse)."""
    value, threshold = num(f.get("value")), num(f.get("threshold"))
    if value is None or threshold is None:
        return None
    # a "max" check may judge |value| (score gaps of either sign): the larger size is worse
    return abs(value) - threshold if f.get("direction") == "max" else threshold - value


def worst_finding(findings: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The finding to name in the summary: among the failed ones (else the decided
    ones), impact ratios first, the one furthest on the wrong side of its threshold."""
    failed = [f for f in findings if f.get("status") == "fail"]
    pool = failed or [f for f in findings if f.get("status") == "pass"]
    pool = [f for f in pool if _margin(f) is not None]
    ratios = [f for f in pool if f.get("metric") == "impact_ratio"]
    pool = ratios or pool
    return max(pool, key=lambda f: _margin(f) or 0.0) if pool else None


def _num(x: Any) -> str:
    value = num(x)
    return DASH if value is None else f"{value:.3g}"


def _describe(f: Mapping[str, Any]) -> str:
    direction = "largest" if f.get("direction") == "max" else "lowest"
    attribute = str(f.get("attribute") or DASH).replace("&", " × ")
    group = str(f.get("group") or DASH).replace("&", " × ")
    metric = metric_label(str(f.get("metric") or "value"))
    metric = metric if metric.isupper() else metric[:1].lower() + metric[1:]
    return (
        f"the {direction} {metric} is {_num(f.get('value'))} for {attribute}={group} "
        f"(threshold {_num(f.get('threshold'))})"
    )


def summary_sentence(verdict: str, findings: Sequence[Mapping[str, Any]]) -> str:
    """One plain-language sentence: verdict, checks failed, the worst finding."""
    label = verdict.upper() if verdict in ("pass", "fail") else "UNKNOWN"
    if not findings:
        return f"{label}: no policy checks were recorded."
    n = len(findings)
    n_fail = sum(1 for f in findings if f.get("status") == "fail")
    n_small = sum(1 for f in findings if f.get("status") == "insufficient_data")
    noun = "check" if n == 1 else "checks"
    if n_fail:
        text = f"{label}: {n_fail} of {n} {noun} failed"
    elif n_small:
        text = f"{label}: none of {n} {noun} failed"
    else:
        text = f"{label}: all {n} {noun} passed" if n > 1 else f"{label}: the check passed"
    if n_small:
        text += f" ({n_small} with insufficient data to decide)"
    worst = worst_finding(findings)
    return text + (f"; {_describe(worst)}." if worst is not None else ".")


def review_section(reviews: Sequence[Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """The sign-off: state (awaiting review, approved, rejected: the latest decision) and
    each review, oldest first. ``None`` (reviews unknown) leaves the section out."""
    if reviews is None:
        return None
    rows = []
    for r in reviews:
        decision = str(r.get("decision") or "").lower()
        state = next((v for k, v in REVIEW_STATES.items() if decision.startswith(k)), decision)
        rows.append(
            {
                "decision": state or DASH,
                "decision_class": state if state in REVIEW_STATES.values() else "unknown",
                "reviewer": str(r.get("reviewer") or DASH),
                "comment": str(r.get("comment") or ""),
                "at": fmt_date(r.get("created_at")),
            }
        )
    state = rows[-1]["decision"] if rows else AWAITING
    return {
        "state": state,
        "state_class": state.replace(" ", "-") if rows else "awaiting",
        "rows": rows,
    }
