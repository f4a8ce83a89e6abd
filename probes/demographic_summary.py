"""The demographic probe's entry summary: fairlearn's between-group differences and ratios.

Differences are max minus min over groups, ratios min over max, equalized odds the
larger of the TPR and FPR differences (fairlearn's definitions); with the bootstrap,
a percentile interval of the demographic parity difference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probes.counts import FP, TP
from probes.stats import homogeneity_pvalue
from probes.util import finite_or_none


def ci_pair(lo: float, hi: float) -> list[float] | None:
    """``[lo, hi]``, or None when either bound is not a finite number."""
    lo_, hi_ = finite_or_none(lo), finite_or_none(hi)
    return None if lo_ is None or hi_ is None else [lo_, hi_]


def _quantiles(x: np.ndarray, alpha: float) -> np.ndarray:
    """Percentile interval over replicates (axis 0); nan-aware only when needed."""
    q = [alpha, 1 - alpha]
    return np.nanquantile(x, q, axis=0) if np.isnan(x).any() else np.quantile(x, q, axis=0)


def boot_bounds(
    boot: np.ndarray | None, ref: int, confidence: float
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Percentile intervals of the selection rates and impact ratios over the replicates."""
    if boot is None:
        return None, None
    bn = boot.sum(axis=-1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        bsel = (boot[..., FP] + boot[..., TP]) / bn
        bimp = bsel / bsel[:, [ref]]
    alpha = (1 - confidence) / 2
    return _quantiles(bsel, alpha), _quantiles(bimp, alpha)


def _spread(values: np.ndarray) -> tuple[float | None, float | None]:
    """fairlearn's between-group difference (max - min) and ratio (min / max)."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return None, None
    hi, lo = float(v.max()), float(v.min())
    return hi - lo, (lo / hi if hi > 0 else None)


def entry_summary(
    r: dict[str, np.ndarray],
    cells: np.ndarray,
    boot: np.ndarray | None,
    *,
    has_label: bool,
    confidence: float,
    n_effective: np.ndarray | None = None,
) -> dict[str, Any]:
    """fairlearn's between-group differences and ratios (and their bootstrap CI).

    Weighted counts (``n_effective`` given): the homogeneity test treats each group
    as ``n_effective`` trials at its weighted selection rate.
    """
    n, selected, sel = r["n"], r["selected"], r["selection_rate"]
    if n_effective is not None:
        selected, n = sel * n_effective, n_effective
    dpd, dpr = _spread(sel)
    summary: dict[str, Any] = {
        "demographic_parity_difference": dpd,
        "demographic_parity_ratio": dpr,
        "selection_rate_homogeneity_p_value": homogeneity_pvalue(selected, n),
        "equalized_odds_difference": None,
        "equalized_odds_ratio": None,
        "equal_opportunity_difference": None,
        "equal_opportunity_ratio": None,
    }
    if has_label:
        tpr_d, tpr_r = _spread(r["tpr"])
        fpr_d, fpr_r = _spread(r["fpr"])
        acc_d, acc_r = _spread(r["accuracy"])
        summary.update(
            equal_opportunity_difference=tpr_d,
            equal_opportunity_ratio=tpr_r,
            equalized_odds_difference=None if tpr_d is None or fpr_d is None else max(tpr_d, fpr_d),
            equalized_odds_ratio=None if tpr_r is None or fpr_r is None else min(tpr_r, fpr_r),
            true_positive_rate_difference=tpr_d,
            false_positive_rate_difference=fpr_d,
            accuracy_difference=acc_d,
            accuracy_ratio=acc_r,
        )
        try:
            from probes.clarify import generalized_entropy_index

            summary["generalized_entropy_index"] = generalized_entropy_index(cells, alpha=2)
        except ImportError:  # pragma: no cover
            pass
    if boot is not None:
        bn = boot.sum(axis=-1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            bsel = (boot[..., FP] + boot[..., TP]) / bn
        diffs = np.nanmax(bsel, axis=1) - np.nanmin(bsel, axis=1)
        alpha = (1 - confidence) / 2
        summary["demographic_parity_difference_ci_bootstrap"] = ci_pair(
            *np.quantile(diffs, [alpha, 1 - alpha])
        )
        summary["bootstrap_replicates"] = int(boot.shape[0])
    return summary
