"""Policy: thresholds from the spec or the domain's defaults, and findings.

Defaults (docs/policy.md):
- hiring: four-fifths rule on selection rate (impact ratio >= 0.8), and on the
  scoring rate when the tool outputs a score (NYC Local Law 144).
- lending: adverse impact ratio on approvals >= 0.8.
- general: impact ratio >= 0.8.
- counterfactual probes: |score gap| <= 0.02, flip rate <= 0.01.
- mlm-stereotype: stereotype score <= 0.6 (0.5 is no preference);
  embedding-association: |effect size| <= 0.5 (Cohen's "medium"), when p < alpha.
"""

from __future__ import annotations

from typing import Any

from audit.spec import AuditSpec
from probes.base import Finding, ProbeEntry

DOMAIN_DEFAULTS: dict[str, dict[str, float]] = {
    "hiring": {"min_impact_ratio": 0.8},
    "lending": {"min_impact_ratio": 0.8},
    "general": {"min_impact_ratio": 0.8},
}
MODEL_DEFAULTS = {
    "max_score_gap": 0.02,
    "max_flip_rate": 0.01,
    "max_stereotype_score": 0.6,
    "max_effect_size": 0.5,
}


def resolved_thresholds(spec: AuditSpec) -> dict[str, Any]:
    """The thresholds in force: spec values over domain and model defaults."""
    out: dict[str, Any] = {**DOMAIN_DEFAULTS[spec.domain], **MODEL_DEFAULTS}
    for key, value in spec.policy.model_dump().items():
        if value is not None:
            out[key] = value
    return out


def _status(
    value: float | None,
    threshold: float,
    *,
    direction: str,
    insufficient: bool,
    p_value: float | None,
    alpha: float,
    require_significance: bool,
) -> str:
    if insufficient or value is None:
        return "insufficient_data"
    breached = value < threshold if direction == "min" else value > threshold
    if breached and require_significance and (p_value is None or p_value >= alpha):
        return "pass"
    return "fail" if breached else "pass"


def findings_for(
    entries: list[ProbeEntry], spec: AuditSpec, *, min_group_size: int
) -> list[Finding]:
    """Evaluate every policy check on every group of every entry."""
    t = resolved_thresholds(spec)
    alpha, req = spec.policy.alpha, spec.policy.require_significance
    out: list[Finding] = []

    def add(
        entry: ProbeEntry,
        g: dict[str, Any],
        metric: str,
        value: Any,
        threshold: float,
        direction: str,
        insufficient: bool,
        *,
        ci_key: str | None = None,
        significance: bool = False,
        p_key: str | None = "p_value_adjusted",
    ) -> None:
        p = g.get(p_key, g.get("p_value")) if p_key else None
        out.append(
            Finding(
                probe=entry.kind,
                attribute=entry.attribute,
                group=str(g["group"]),
                metric=metric,
                value=value,
                threshold=threshold,
                status=_status(  # type: ignore[arg-type]
                    value,
                    threshold,
                    direction=direction,
                    insufficient=insufficient,
                    p_value=p,
                    alpha=alpha,
                    require_significance=req or significance,
                ),
                p_value=p,
                ci=tuple(g[ci_key]) if ci_key and g.get(ci_key) else None,
                direction=direction,  # type: ignore[arg-type]
            )
        )

    for e in entries:
        if e.kind == "demographic":
            for g in e.groups:
                small = bool(g.get("insufficient_data"))
                add(
                    e,
                    g,
                    "impact_ratio",
                    g.get("impact_ratio"),
                    t["min_impact_ratio"],
                    "min",
                    small,
                    ci_key="impact_ratio_ci",
                )
                if spec.domain == "hiring" and g.get("scoring_impact_ratio") is not None:
                    add(
                        e,
                        g,
                        "scoring_impact_ratio",
                        g["scoring_impact_ratio"],
                        t["min_impact_ratio"],
                        "min",
                        small,
                        p_key=None,
                    )
        elif e.kind in ("counterfactual-text", "counterfactual-tabular"):
            ref = e.model_extra.get("reference_group") if e.model_extra else None
            for g in e.groups:
                if g.get("group") == ref:
                    continue
                small = int(g.get("n") or 0) < 1
                gap = g.get("score_gap")
                if gap is not None:
                    add(
                        e,
                        g,
                        "score_gap",
                        abs(gap),
                        t["max_score_gap"],
                        "max",
                        small,
                        ci_key="score_gap_ci",
                    )
                if g.get("flip_rate") is not None:
                    add(
                        e,
                        g,
                        "flip_rate",
                        g["flip_rate"],
                        t["max_flip_rate"],
                        "max",
                        small,
                        ci_key="flip_rate_ci",
                    )
        elif e.kind == "mlm-stereotype":
            for g in e.groups:
                add(
                    e,
                    g,
                    "stereotype_score",
                    g.get("stereotype_score"),
                    t["max_stereotype_score"],
                    "max",
                    int(g.get("n") or 0) < 10,
                    ci_key="stereotype_score_ci",
                    significance=True,
                )
        elif e.kind == "embedding-association":
            for g in e.groups:
                es = g.get("effect_size")
                add(
                    e,
                    g,
                    "effect_size",
                    None if es is None else abs(es),
                    t["max_effect_size"],
                    "max",
                    False,
                    significance=True,
                )
    return out


def verdict(findings: list[Finding]) -> str:
    return "fail" if any(f.status == "fail" for f in findings) else "pass"
