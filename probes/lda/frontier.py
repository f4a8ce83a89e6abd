"""The decision: Pareto frontier, the best alternative and the features that drive the disparity.

- The **frontier** holds the candidates no other candidate beats on both
  performance and lowest impact ratio (point estimates; ties kept).
- **best** is the candidate with the highest lowest impact ratio among those
  whose performance loss against the model in use is at most
  ``max_performance_loss`` (point estimate; the CI is reported beside it), and
  only when it is less discriminatory than the model in use. Ties go to the
  smaller loss, then to the earlier candidate (the search order), so the
  choice is deterministic.
- **drivers** are the features whose neutralization raises the lowest impact
  ratio most: the "drop" candidates sorted by gain.
"""

from __future__ import annotations

from typing import Any


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def pareto(records: list[dict[str, Any]]) -> list[str]:
    """Names of the non-dominated records (maximize performance and min_impact_ratio)."""
    pts: list[tuple[str, float, float]] = []
    for r in records:
        p, q = _num(r.get("performance")), _num(r.get("min_impact_ratio"))
        if p is not None and q is not None:
            pts.append((str(r["name"]), p, q))
    out = []
    for name, p, q in pts:
        dominated = any(
            (p2 >= p and q2 >= q) and (p2 > p or q2 > q) for _, p2, q2 in pts if _ is not name
        )
        if not dominated:
            out.append(name)
    return out


def loss(baseline: dict[str, Any], record: dict[str, Any]) -> float | None:
    """Performance lost against the model in use (positive: worse)."""
    b, c = _num(baseline.get("performance")), _num(record.get("performance"))
    return None if b is None or c is None else b - c


def choose_best(
    baseline: dict[str, Any], records: list[dict[str, Any]], *, max_loss: float
) -> dict[str, Any] | None:
    """The least discriminatory record within the loss budget that improves on the baseline."""
    base_ir = _num(baseline.get("min_impact_ratio"))
    best: tuple[float, float, int] | None = None
    chosen = None
    for i, r in enumerate(records):
        ir, lost = _num(r.get("min_impact_ratio")), r.get("performance_loss")
        if ir is None or lost is None or lost > max_loss + 1e-12:
            continue
        if base_ir is not None and ir <= base_ir:
            continue
        key = (-ir, float(lost), i)
        if best is None or key < best:
            best, chosen = key, r
    return chosen


def drivers(baseline: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gain in lowest impact ratio from neutralizing each feature, largest first."""
    base_ir = _num(baseline.get("min_impact_ratio"))
    out = []
    for r in records:
        if r.get("family") != "drop" or base_ir is None or r.get("min_impact_ratio") is None:
            continue
        out.append(
            {
                "feature": r["dropped"][0],
                "min_impact_ratio_gain": float(r["min_impact_ratio"]) - base_ir,
                "min_impact_ratio_gain_ci": r.get("min_impact_ratio_gain_ci"),
                "performance_loss": r.get("performance_loss"),
            }
        )
    out.sort(key=lambda d: (-d["min_impact_ratio_gain"], d["feature"]))
    return out
