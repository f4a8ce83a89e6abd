"""Group metrics on a model's decisions, from one pass of confusion-cell counts.

References: fairlearn's MetricFrame definitions (differences are max minus
min, ratios min over max, equalized odds the larger of the TPR and FPR
differences); aif360's ClassificationMetric for a declared privileged group;
the EEOC four-fifths rule and NYC Local Law 144 (impact ratio, scoring rate).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from probes import demographic_models as typed
from probes.base import (
    Check,
    CountContext,
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeError,
    ProbeInput,
    ProbeResult,
    register_probe,
)
from probes.clarify import add_cddpl, cddpl_by_group, one_vs_rest, with_cddpl
from probes.counts import (
    GroupCounts,
    attribute_sets,
    count_groups,
    limited_marginals,
    rates,
)
from probes.demographic_summary import boot_bounds, ci_pair, entry_summary
from probes.impact import exclusions, impact, privileged_metrics, reference_index
from probes.keys import group_sum
from probes.proxy_groups import proxy_entries
from probes.scores import score_metrics
from probes.util import finite_or_none
from probes.weighted import group_cis


class DemographicConfig(ProbeConfig):
    """Configuration of the demographic probe (spec ``probes[i]``)."""

    kind: Literal["demographic"] = "demographic"
    attributes: list[str] | None = Field(
        default=None, description="protected columns to audit (default: dataset.protected)"
    )
    intersectional: bool = Field(
        default=False, description="also audit every combination of two or more attributes"
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    ci_method: Literal["wilson", "exact"] = "wilson"
    bootstrap: int = Field(
        default=0, ge=0, le=100_000, description="bootstrap replicates (0: analytic CIs only)"
    )
    min_group_size: int | None = Field(
        default=None, ge=1, description="groups smaller than this are insufficient_data"
    )
    impact_ratio_min_share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="groups under this share of the rows are left out of impact ratios and "
        "their findings (reported, marked impact_ratio_excluded); NYC LL144 allows 0.02. The "
        "unknown category is always left out",
    )


MSG_NO_ROWS = (
    "dataset: no rows to audit for {attribute!r}; the dataset (or the slice given to "
    "this probe) is empty"
)


def _as_entry(
    counts: GroupCounts,
    ref_key: tuple[str, ...],
    groups: list[dict[str, Any]],
    summary: dict[str, Any],
    reasons: list[str | None],
    min_group_size: int,
) -> ProbeEntry:
    return ProbeEntry.model_validate(
        dict(
            kind="demographic",
            attribute="&".join(counts.attributes),
            attributes=list(counts.attributes),
            reference_group="&".join(ref_key),
            groups=groups,
            summary=summary,
            excluded_groups=[
                {"group": g["group"], "n": g["n"], "share": g["share"]}
                for g in groups
                if g["insufficient_data"]
            ],
            impact_ratio_excluded=[
                {"group": g["group"], "n": g["n"], "share": g["share"], "reason": reason}
                for g, reason in zip(groups, reasons)
                if reason is not None
            ],
            min_group_size=min_group_size,
        )
    )


def _present_groups(
    counts: GroupCounts,
) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray | None]:
    """The groups with rows: keys, counts and (weighted) sums of squared weights."""
    keys, cells = counts.flat()
    present = cells.sum(axis=1) > 0
    keys = [k for k, p in zip(keys, present) if p]
    if not keys:
        raise ProbeError(MSG_NO_ROWS.format(attribute=" x ".join(counts.attributes)))
    return keys, cells[present], None if counts.sq is None else counts.sq[present]


def _label_metrics(
    i: int,
    r: dict[str, np.ndarray],
    cis: dict[str, tuple[np.ndarray, np.ndarray]],
    clarify: list[dict[str, Any]] | None,
    *,
    has_label: bool,
) -> dict[str, Any]:
    """Group ``i``'s error rates and their CIs (None for each without labels)."""
    if not has_label:
        return {m: None for m in ("tpr", "fpr", "fnr", "precision", "accuracy")}
    g: dict[str, Any] = {
        m: finite_or_none(r[m][i])
        for m in ("tpr", "fpr", "fnr", "tnr", "precision", "npv", "accuracy", "base_rate")
    }
    g["tpr_ci"] = ci_pair(cis["tpr"][0][i], cis["tpr"][1][i])
    g["fpr_ci"] = ci_pair(cis["fpr"][0][i], cis["fpr"][1][i])
    if clarify is not None:
        g["clarify"] = clarify[i]
    return g


def entry_from_counts(
    counts: GroupCounts,
    *,
    config: DemographicConfig,
    min_group_size: int,
    privileged: dict[str, Any] | None = None,
    boot: np.ndarray | None = None,
    unknown_label: str = "unknown",
    reference: dict[str, Any] | None = None,
) -> ProbeEntry:
    """Every group metric, CI and test for one attribute (or intersection); weighted
    counts: CIs, tests and ``min_group_size`` on each group's Kish ``n_effective``."""
    keys, cells, sq = _present_groups(counts)
    r = rates(cells)
    n, selected, sel = r["n"], r["selected"], r["selection_rate"]
    n_eff, cis = group_cis(cells, sq, confidence=config.confidence, method=config.ci_method)
    eligible = (n if n_eff is None else n_eff) >= min_group_size
    total = float(n.sum())
    reasons = exclusions(
        keys, n / total, unknown_label=unknown_label, min_share=config.impact_ratio_min_share
    )
    imp = impact(
        selected,
        n,
        eligible=eligible,
        excluded=reasons,
        confidence=config.confidence,
        reference=reference_index(keys, counts.attributes, reference),
        n_effective=n_eff,
    )
    ref = imp.ref
    lo, hi = cis["selection_rate"]
    boot_sel, boot_imp = boot_bounds(boot, ref, config.confidence)
    clarify = one_vs_rest(cells) if counts.has_label and len(keys) > 1 else None
    groups: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        g: dict[str, Any] = {
            "group": "&".join(key),
            "levels": dict(zip(counts.attributes, key)),
            "n": int(n[i]) if n_eff is None else float(n[i]),
            "share": finite_or_none(n[i] / total),
            "selected": int(selected[i]) if n_eff is None else float(selected[i]),
            "selection_rate": finite_or_none(sel[i]),
            "selection_rate_ci": ci_pair(lo[i], hi[i]),
            "impact_ratio": finite_or_none(imp.ratio[i]),
            "impact_ratio_ci": None if i == ref else ci_pair(imp.lo[i], imp.hi[i]),
            "p_value": imp.p_values[i],
            "p_value_adjusted": imp.adjusted[i],
            "selection_rate_sd": finite_or_none(imp.sd[i]),
            "insufficient_data": bool(not eligible[i]),
        }
        if n_eff is not None:
            g["n_effective"] = float(n_eff[i])
        if reasons[i] is not None:
            g["impact_ratio_excluded"] = reasons[i]
        g.update(_label_metrics(i, r, cis, clarify, has_label=counts.has_label))
        if boot_sel is not None and boot_imp is not None:
            g["selection_rate_ci_bootstrap"] = ci_pair(boot_sel[0, i], boot_sel[1, i])
            g["impact_ratio_ci_bootstrap"] = (
                None if i == ref or reasons[i] else ci_pair(boot_imp[0, i], boot_imp[1, i])
            )
        groups.append(g)
    summary = entry_summary(
        r,
        cells,
        boot,
        has_label=counts.has_label,
        confidence=config.confidence,
        n_effective=n_eff,
    )
    if privileged and len(counts.attributes) == 1 and counts.attributes[0] in privileged:
        attr = counts.attributes[0]
        summary["privileged"] = privileged_metrics(
            keys, cells, attr, str(privileged[attr]), counts.has_label, unknown_label
        )
    return _as_entry(counts, keys[ref], groups, summary, reasons, min_group_size)


def entries_from_counts(
    full: GroupCounts,
    *,
    config: DemographicConfig,
    min_group_size: int,
    privileged: dict[str, Any] | None = None,
    seed: int = 0,
    max_groups: int | None = None,
    max_total_groups: int | None = None,
    unknown_label: str = "unknown",
    reference: dict[str, Any] | None = None,
) -> list[ProbeEntry]:
    """Entries for each attribute (and intersection) from the full-intersection counts.

    An attribute or intersection with more than ``max_groups`` observed groups, or
    more than ``max_total_groups`` over all of them, is refused by name before any
    entry is built.
    """
    sets = attribute_sets(list(full.attributes), config.intersectional)
    subs = limited_marginals(full, sets, max_groups, max_total_groups)
    boot_full = full.bootstrap(replicates=config.bootstrap, seed=seed) if config.bootstrap else None
    entries = []
    for sub, inverse in subs:
        boot = None
        if boot_full is not None:
            boot = group_sum(boot_full, inverse, sub.n_groups, axis=1)
        entries.append(
            entry_from_counts(
                sub,
                config=config,
                min_group_size=min_group_size,
                privileged=privileged,
                boot=boot,
                unknown_label=unknown_label,
                reference=reference,
            )
        )
    return entries


@register_probe("demographic", kind="group", tags=("decisions", "counts", "ll144"))
class DemographicProbe(Probe):
    """Selection rate, impact ratio, error rates and calibration by group: every metric,
    CI and test from one pass of confusion counts (shards merge by summing counts).
    References: fairlearn MetricFrame; aif360 ClassificationMetric; EEOC four-fifths rule.
    """

    config_model = DemographicConfig
    title = "Demographic parity"
    layout = "rates"
    checks = (
        Check(
            "impact_ratio",
            "min_impact_ratio",
            0.8,
            "min",
            "lowest impact ratio tolerated (four-fifths rule)",
            ci="impact_ratio_ci",
            insufficient_flag="insufficient_data",
            skip_flag="impact_ratio_excluded",
            gt=0,
            le=1,
        ),
        Check(
            "scoring_impact_ratio",
            "min_impact_ratio",
            0.8,
            "min",
            "lowest impact ratio tolerated (four-fifths rule)",
            p_value=None,
            insufficient_flag="insufficient_data",
            skip_missing=True,
            skip_flag="impact_ratio_excluded",
            domains=("hiring",),
            gt=0,
            le=1,
        ),
        Check(
            "selection_rate_sd",
            "max_selection_rate_sd",
            2.0,
            "max",
            "EEOC two-standard-deviation rule, off unless set (2 is the rule): largest "
            "shortfall of a group's selection rate below the reference's, in standard "
            "deviations of the difference",
            p_value=None,
            insufficient_flag="insufficient_data",
            skip_missing=True,
            skip_reference=True,
            skip_flag="impact_ratio_excluded",
            optional=True,
            gt=0,
        ),
    )
    from_counts = True
    counts_strata = True  # CDDPL from counts over the groups and dataset.strata
    default = True
    group_model = typed.DemographicGroup
    summary_model = typed.DemographicSummary
    entry_fields = typed.DemographicEntryFields
    example = typed.EXAMPLE

    def entries_from_counts(
        self, counts: GroupCounts | None, *, config: Any, context: CountContext
    ) -> list[ProbeEntry]:
        strata = context.strata
        min_size = config.min_group_size or context.min_group_size
        by_proxy = proxy_entries(context.proxy, config=config, min_group_size=min_size)
        if counts is None:  # dataset.proxy alone
            return by_proxy
        entries = entries_from_counts(
            counts.marginal(counts.attributes[:-1]) if strata else counts,
            config=config,
            min_group_size=min_size,
            privileged=context.privileged,
            seed=context.seed,
            max_groups=context.max_groups,
            max_total_groups=context.max_total_groups,
            unknown_label=context.unknown_label,
            reference=context.reference,
        )
        if strata is not None:  # CDDPL: predictions and strata, no label needed
            sets = [[*(e.model_extra or {})["attributes"], strata] for e in entries]
            entries = [
                add_cddpl(e, cddpl_by_group(counts.marginal(a))) for e, a in zip(entries, sets)
            ]
        return entries + by_proxy

    def run(self, *, data: ProbeInput, model: Any = None, config: DemographicConfig) -> ProbeResult:
        if data.y_pred is None:
            raise ProbeError("dataset.prediction: the demographic probe needs predicted labels")
        attrs = list(config.attributes or data.protected)
        for a in attrs:
            if a not in data.frame.columns:
                raise ProbeError(
                    f"probes[demographic].attributes: column {a!r} is not a protected column "
                    f"(dataset.protected: {', '.join(data.protected)})"
                )
        min_size = config.min_group_size or data.min_group_size
        by_proxy = proxy_entries(data, config=config, min_group_size=min_size)
        if not attrs:  # dataset.proxy alone: the race_proxy entry only
            return ProbeResult(entries=by_proxy)
        full = count_groups(
            data.frame, attrs, y_pred=data.y_pred, y_true=data.y_true, weight=data.weight
        )
        entries = entries_from_counts(
            full,
            config=config,
            min_group_size=min_size,
            privileged=data.privileged,
            seed=data.seed,
            max_groups=data.max_groups,
            max_total_groups=data.max_total_groups,
            unknown_label=data.unknown_label,
            reference=data.reference,
        )
        if data.strata:  # CDDPL: predictions and strata, no label needed
            entries = [with_cddpl(e, data) for e in entries]
        if data.score is not None:
            cols: dict[str, Any] = dict(frame=data.frame, score=data.score, y_true=data.y_true)
            cols["weight"] = data.weight
            entries = [score_metrics(e, **cols) for e in entries]
        return ProbeResult(entries=entries + by_proxy, extra={"counts": full.to_dict()})
