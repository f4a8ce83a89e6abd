"""Training-data audit: SageMaker Clarify's pre-training bias metrics by group.

Before any model is involved, the labels themselves can be skewed: a group may
be rare (class imbalance) or receive the favorable label less often. For each
protected attribute, every group (facet ``d``) is compared with everyone else
(``a``) using Clarify's pre-training metrics CI, DPL, KL, JS, LP, TVD, KS and,
with a strata column, CDDL. All of them come from label counts per group (one
``np.bincount`` pass, :mod:`probes.counts`), so shards merge by adding counts.

References: Amazon SageMaker Clarify, "Pre-training bias metrics" and the
``smclarify`` package; Das et al. (2021), "Fairness measures for machine
learning in finance".
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from probes import dataset_models as typed
from probes.base import (
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeError,
    ProbeInput,
    ProbeResult,
    register_probe,
)
from probes.clarify import (
    PRE_TRAINING,
    conditional_demographic_disparity_arrays,
    pre_training_arrays,
    to_optional,
)
from probes.counts import GroupCounts, attribute_sets, count_groups, limited_marginals
from probes.stats import holm, proportion_ci, two_proportion_pvalue

MSG_NO_LABEL = (
    "dataset.label: the dataset probe audits the ground-truth labels; set dataset.label "
    "to the label column"
)
MSG_BAD_ATTRIBUTE = (
    "probes[dataset].attributes: column {column!r} is not a protected column "
    "(dataset.protected: {protected})"
)
MSG_BAD_STRATA = (
    "probes[dataset].strata: column {column!r} not found in the dataset; columns are: {columns}"
)
MSG_STRATA_IS_ATTRIBUTE = (
    "probes[dataset].strata: column {column!r} is also an audited attribute; "
    "choose a different column to condition on (e.g. a department or a score band)"
)

SIGNED = ("CI", "DPL", "CDDL")  # summarised by the largest |value|; the others are >= 0
NEG, POS = 0, 1  # label counts [negatives, positives] = the [tn, fp] cells with y_pred = y_true


class DatasetProbeConfig(ProbeConfig):
    """Configuration of the dataset probe (spec ``probes[i]``)."""

    kind: Literal["dataset"] = "dataset"
    attributes: list[str] | None = Field(
        default=None, description="protected columns to audit (default: dataset.protected)"
    )
    strata: str | None = Field(
        default=None,
        description="column to condition on for CDDL (conditional demographic disparity)",
    )
    intersectional: bool = Field(
        default=False, description="also audit every combination of two or more attributes"
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_group_size: int | None = Field(
        default=None, ge=1, description="groups smaller than this are insufficient_data"
    )


def _as_category(column: pd.Series) -> pd.Series:
    """A strata column as category, missing values as the explicit 'unknown' level."""
    if isinstance(column.dtype, pd.CategoricalDtype) and not column.isna().any():
        return column
    text = column.astype(object).where(column.notna(), "unknown").astype(str)
    return text.astype("category")


def _max_abs(values: np.ndarray, keys: list[str], signed: bool) -> tuple[float | None, str | None]:
    """The value of largest magnitude (or largest value) and its group; NaN ignored."""
    v = np.abs(values) if signed else values
    if np.isnan(v).all():
        return None, None
    i = int(np.nanargmax(v))
    return to_optional(values[i]), keys[i]


def _entry(
    attrs: tuple[str, ...], groups: list[dict[str, Any]], summary: dict[str, Any], min_size: int
) -> ProbeEntry:
    """The results.json entry; groups below ``min_size`` are also listed as excluded."""
    return ProbeEntry.model_validate(
        {
            "kind": "dataset",
            "attribute": "&".join(attrs),
            "attributes": list(attrs),
            "groups": groups,
            "summary": summary,
            "excluded_groups": [
                {"group": g["group"], "n": g["n"], "share": g["share"]}
                for g in groups
                if g["insufficient_data"]
            ],
            "min_group_size": min_size,
        }
    )


def _groups(
    counts: GroupCounts,
    idx: list[int],
    keys: list[str],
    levels: list[dict[str, str]],
    rate: np.ndarray,
    rest: np.ndarray,
    confidence: float,
    min_size: int,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Each present group's size, positives, rate with CI and test against the rest; and
    the sizes judged against ``min_size``. Weighted counts (``dataset.weight``): sums of
    weights, CIs and tests on the Kish effective sizes of the group and of the rest."""
    lab = counts.table[:, :2].astype(float)
    n = lab.sum(axis=1)
    k, size, k_rest, n_rest = lab[:, POS], n, rest[:, POS], rest.sum(axis=1)
    if counts.sq is not None:
        sq = counts.sq[:, :2].sum(axis=1)
        size = np.where(sq > 0, n * n / np.where(sq > 0, sq, 1), 0.0)
        sq_rest = sq.sum() - sq
        n_rest = np.where(sq_rest > 0, n_rest * n_rest / np.where(sq_rest > 0, sq_rest, 1), 0.0)
        k, k_rest = np.nan_to_num(rate) * size, np.nan_to_num(k_rest / rest.sum(axis=1)) * n_rest
    lo, hi = proportion_ci(k, size, confidence=confidence)
    pvals = [two_proportion_pvalue(k[i], size[i], k_rest[i], n_rest[i]) for i in idx]  # type: ignore[arg-type]
    adjusted = holm(pvals)
    as_num = float if counts.sq is not None else int
    groups: list[dict[str, Any]] = []
    for j, i in enumerate(idx):
        g: dict[str, Any] = {
            "group": keys[i],
            "levels": levels[i],
            "n": as_num(n[i]),
            "share": to_optional(n[i] / n.sum()),
            "positives": as_num(lab[i, POS]),
            "positive_rate": to_optional(rate[i]),
            "positive_rate_ci": [float(lo[i]), float(hi[i])],
            "p_value": pvals[j],
            "p_value_adjusted": adjusted[j],
            "insufficient_data": bool(size[i] < min_size),
        }
        if counts.sq is not None:
            g["n_effective"] = float(size[i])
        groups.append(g)
    return groups, size


def entry_from_counts(
    counts: GroupCounts,
    *,
    strata: str | None,
    confidence: float,
    min_group_size: int,
) -> ProbeEntry:
    """One entry (attribute or intersection) from label counts.

    ``counts`` holds label counts (``y_pred = y_true``, cells ``[neg, pos, 0, 0]``)
    over the audited attributes, followed by the ``strata`` attribute if given.
    """
    attrs = counts.attributes[:-1] if strata else counts.attributes
    per_stratum = None
    if strata:
        groups_counts, per_stratum = counts.by_last()  # (groups, strata, 4)
    else:
        groups_counts = counts
    n_groups = groups_counts.n_groups
    lab = groups_counts.table[:, :2].astype(float)
    tuples = groups_counts.flat()[0]
    keys = ["&".join(k) for k in tuples]
    levels = [dict(zip(attrs, k, strict=True)) for k in tuples]
    present = lab.sum(axis=1) > 0
    total = lab.sum(axis=0)
    rest = total - lab
    metrics = pre_training_arrays(lab, rest)
    cddl = np.full(n_groups, np.nan)
    if per_stratum is not None:
        s = per_stratum
        s_total = s.sum(axis=0)
        cddl = conditional_demographic_disparity_arrays(
            facet_pos=s[..., POS],
            facet_neg=s[..., NEG],
            rest_pos=s_total[..., POS] - s[..., POS],
            rest_neg=s_total[..., NEG] - s[..., NEG],
        )
    n = lab.sum(axis=1)
    rows = float(total.sum())
    rate = np.where(n > 0, lab[:, POS] / np.where(n > 0, n, 1), np.nan)
    idx = [i for i in range(n_groups) if present[i]]
    groups, size = _groups(groups_counts, idx, keys, levels, rate, rest, confidence, min_group_size)
    for g, i in zip(groups, idx):
        g.update({m: to_optional(metrics[m][i]) for m in PRE_TRAINING})
        g["CDDL"] = to_optional(cddl[i])
    eligible = [i for i in idx if size[i] >= min_group_size]
    over = "groups with n >= min_group_size"
    if not eligible:
        eligible, over = idx, "all groups (none reaches min_group_size)"
    summary: dict[str, Any] = {
        "rows": float(rows) if groups_counts.weighted else int(rows),
        "positive_rate": to_optional(total[POS] / rows) if rows else None,
        "summary_over": over,
        "strata": strata,
        **_largest(rate, {**metrics, "CDDL": cddl}, eligible, [keys[i] for i in eligible]),
    }
    return _entry(attrs, groups, summary, min_group_size)


def _largest(
    rate: np.ndarray, metrics: dict[str, np.ndarray], eligible: list[int], names: list[str]
) -> dict[str, Any]:
    """Over the ``eligible`` groups (named ``names``): the positive-rate difference and
    ratio, and each metric's largest value (|value| when signed) with its group."""
    out: dict[str, Any] = {}
    if eligible:
        r = rate[eligible]
        out["positive_rate_difference"] = to_optional(r.max() - r.min())
        out["positive_rate_ratio"] = to_optional(r.min() / r.max()) if r.max() > 0 else None
    else:
        out["positive_rate_difference"] = out["positive_rate_ratio"] = None
    for metric in (*PRE_TRAINING, "CDDL"):
        signed = metric in SIGNED
        values = metrics[metric][eligible]
        value, group = _max_abs(values, names, signed) if eligible else (None, None)
        prefix = "max_abs_" if signed else "max_"
        out[prefix + metric] = value
        out[prefix + metric + "_group"] = group
    return out


@register_probe("dataset", kind="data", tags=("labels", "counts", "pre-training"))
class DatasetProbe(Probe):
    """Pre-training (label) bias by group: SageMaker Clarify's CI, DPL, KL, JS, LP, TVD, KS, CDDL.

    Each group (facet) is compared with the rest of the data. Needs ground-truth
    labels (``dataset.label``), no model and no predictions.
    """

    config_model = DatasetProbeConfig
    title = "Training data (pre-training metrics)"
    group_model = typed.DatasetGroup
    summary_model = typed.DatasetSummary
    entry_fields = typed.DatasetEntryFields
    example = typed.EXAMPLE

    def run(
        self, *, data: ProbeInput, model: Any = None, config: DatasetProbeConfig
    ) -> ProbeResult:
        if data.y_true is None:
            raise ProbeError(MSG_NO_LABEL)
        attrs = list(config.attributes or data.protected)
        for a in attrs:
            if a not in data.frame.columns:
                raise ProbeError(
                    MSG_BAD_ATTRIBUTE.format(column=a, protected=", ".join(data.protected))
                )
        frame = data.frame[attrs]
        if config.strata is not None:
            if config.strata in attrs:
                raise ProbeError(MSG_STRATA_IS_ATTRIBUTE.format(column=config.strata))
            if config.strata not in data.frame.columns:
                raise ProbeError(
                    MSG_BAD_STRATA.format(
                        column=config.strata, columns=", ".join(map(str, data.frame.columns))
                    )
                )
            frame = frame.assign(**{config.strata: _as_category(data.frame[config.strata])})
        y = np.asarray(data.y_true, dtype=bool)
        if len(y) != len(frame):
            raise ProbeError(
                f"dataset.label: {len(y)} labels for {len(frame)} rows; every row needs a label"
            )
        min_size = config.min_group_size or data.min_group_size
        if len(frame) == 0:
            entries = [
                _entry(s, [], {"rows": 0, "strata": config.strata}, min_size)
                for s in attribute_sets(attrs, config.intersectional)
            ]
            return ProbeResult(entries=entries)
        full = count_groups(frame, list(frame.columns), y_pred=y, weight=data.weight)
        sets = attribute_sets(attrs, config.intersectional)
        limited_marginals(full, sets, data.max_groups, data.max_total_groups)
        entries = []
        for attr_set in sets:
            wanted = list(attr_set) + ([config.strata] if config.strata else [])
            entries.append(
                entry_from_counts(
                    full.marginal(wanted),
                    strata=config.strata,
                    confidence=config.confidence,
                    min_group_size=min_size,
                )
            )
        return ProbeResult(entries=entries, extra={"label_counts": full.to_dict()})
