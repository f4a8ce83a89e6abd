"""Policy: the checks each probe declares, judged against thresholds, and the verdict.

Every probe declares its checks (:class:`probes.base.Check`: metric, threshold name and
default, direction, CI and p-value fields, minimum n, whether significance is required).
Thresholds come from the spec's ``policy`` block, else from those defaults (four-fifths
rule: impact ratio >= 0.8; counterfactual: |score gap| <= 0.02, flip rate <= 0.01;
mlm-stereotype: score <= 0.6; embedding-association: |effect size| <= 0.5 when
significant). Nothing here knows a probe by name.

A breach whose own p-value is not below ``policy.alpha`` carries a ``note`` ("above
threshold, not significant at alpha 0.05"); it fails unless significance is required.
An entry whose ``summary.not_applicable`` gives a reason (a flip test on an attribute
the model does not take) yields ``not_applicable`` findings, which never fail.
"""

from __future__ import annotations

from typing import Any

from audit.engine.spec import AuditSpec
from probes.base import Check, Finding, ProbeEntry, get_probe, policy_thresholds


def resolved_thresholds(spec: AuditSpec) -> dict[str, Any]:
    """The thresholds in force: spec values over the probes' declared defaults."""
    out: dict[str, Any] = {name: check.default for name, check in policy_thresholds().items()}
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
) -> tuple[str, str | None]:
    """(status, note): a breach whose p-value is not below ``alpha`` says so in its note."""
    if insufficient or value is None:
        return "insufficient_data", None
    breached = value < threshold if direction == "min" else value > threshold
    if not breached:
        return "pass", None
    side = "below" if direction == "min" else "above"
    if p_value is None:  # nothing to test significance with
        if require_significance:
            return "pass", f"{side} threshold, no p-value to test its significance"
        return "fail", None
    if p_value >= alpha:
        note = f"{side} threshold, not significant at alpha {alpha:g}"
        return ("pass" if require_significance else "fail"), note
    return "fail", None


def _breaches(value: float, threshold: float, direction: str) -> bool:
    return value < threshold if direction == "min" else value > threshold


def _judged_change(
    check: Check, g: dict[str, Any], threshold: float, status: str, note: str | None
) -> tuple[str, str | None]:
    """A check on a change from a baseline (``Check.baseline_field``, ``Check.fail_flag``).

    No breach while the baseline is itself past the threshold (nothing to change: e.g. no
    less discriminatory alternative is needed when the model in use passes); otherwise
    the probe's flag (e.g. a gain beyond its CI) fails the finding whatever the threshold.
    """
    if status == "insufficient_data":
        return status, note
    base = g.get(check.baseline_field) if check.baseline_field else None
    if base is not None and _breaches(float(base), threshold, check.direction):
        return "pass", "the baseline already meets the threshold"
    if check.fail_flag and g.get(check.fail_flag):
        return "fail", note
    return status, note


def _finding(
    entry: ProbeEntry, g: dict[str, Any], check: Check, spec: AuditSpec, threshold: float
) -> Finding:
    value = g.get(check.value_field)
    if value is not None and check.absolute:
        value = abs(value)
    insufficient = bool(check.insufficient_flag and g.get(check.insufficient_flag))
    insufficient = insufficient or (check.min_n > 0 and int(g.get("n") or 0) < check.min_n)
    p = None
    if check.p_value:  # the row's own p-value field, else the group's p_value
        p = g.get(check.p_value)
        p = g.get("p_value") if p is None else p
    status, note = _status(
        value,
        threshold,
        direction=check.direction,
        insufficient=insufficient,
        p_value=p,
        alpha=spec.policy.alpha,
        require_significance=spec.policy.require_significance or check.require_significance,
    )
    status, note = _judged_change(check, g, threshold, status, note)
    reason = (entry.summary or {}).get("not_applicable")
    if reason and status != "insufficient_data":
        status, note = "not_applicable", str(reason)
    extra = {"note": note} if note else {}
    return Finding(
        probe=entry.kind,
        attribute=entry.attribute,
        group=str(g["group"]),
        metric=check.metric,
        value=value,
        threshold=threshold,
        status=status,  # type: ignore[arg-type]
        p_value=p,
        ci=tuple(g[check.ci]) if check.ci and g.get(check.ci) else None,
        direction=check.direction,
        **extra,
    )


def findings_for(
    entries: list[ProbeEntry], spec: AuditSpec, *, min_group_size: int
) -> list[Finding]:
    """Evaluate every check each probe declares on every group of each of its entries."""
    thresholds = resolved_thresholds(spec)
    out: list[Finding] = []
    for entry in entries:
        checks = [
            c
            for c in get_probe(entry.kind).checks
            if (c.domains is None or spec.domain in c.domains)
            and (not c.optional or (spec.policy.model_extra or {}).get(c.threshold) is not None)
        ]
        ref = (entry.model_extra or {}).get("reference_group")
        for g in entry.groups:
            for check in checks:
                if check.skip_reference and g.get("group") == ref:
                    continue
                if check.skip_missing and g.get(check.value_field) is None:
                    continue
                if check.skip_flag and g.get(check.skip_flag):
                    continue
                out.append(_finding(entry, g, check, spec, thresholds[check.threshold]))
    return out


def verdict(findings: list[Finding]) -> str:
    return "fail" if any(f.status == "fail" for f in findings) else "pass"
