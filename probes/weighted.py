"""Weighted counts (``dataset.weight``): the Kish effective sample size and rate CIs.

A weighted group's rate is ``sum(w * y) / sum(w)``; its sampling variance is taken
as that of a simple random sample of ``n_eff = (sum w)^2 / sum(w^2)`` rows (Kish
1965), so CIs and tests treat a weighted group as ``n_eff`` trials at the weighted
rate. Equal weights give ``n_eff = n`` and the unweighted intervals back.
"""

from __future__ import annotations

import numpy as np

from probes.counts import FN, FP, TN, TP, rates
from probes.stats import CIMethod, proportion_ci

ALL_CELLS = (TN, FP, FN, TP)


def kish_n(cells: np.ndarray, sq: np.ndarray | None, cols: tuple[int, ...]) -> np.ndarray | None:
    """Kish effective sample size of the given cells per group; None for unweighted counts."""
    if sq is None:
        return None
    w = cells[:, list(cols)].sum(axis=1).astype(float)
    w2 = sq[:, list(cols)].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w2 > 0, w * w / np.where(w2 > 0, w2, 1), 0.0)


def rate_ci(
    rate: np.ndarray,
    num: np.ndarray,
    den: np.ndarray,
    n_eff: np.ndarray | None,
    *,
    confidence: float,
    method: CIMethod,
) -> tuple[np.ndarray, np.ndarray]:
    """CI of a rate: ``num / den`` as counted, or (weighted) ``rate`` over ``n_eff`` trials."""
    if n_eff is None:
        return proportion_ci(num, den, confidence=confidence, method=method)
    k = np.nan_to_num(rate) * n_eff
    return proportion_ci(k, n_eff, confidence=confidence, method=method)


def group_cis(
    cells: np.ndarray, sq: np.ndarray | None, *, confidence: float, method: CIMethod
) -> tuple[np.ndarray | None, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per-group ``n_effective`` (None unweighted) and CIs of selection rate, TPR and FPR."""
    r = rates(cells)
    n_eff = kish_n(cells, sq, ALL_CELLS)
    out = {
        "selection_rate": rate_ci(
            r["selection_rate"], r["selected"], r["n"], n_eff, confidence=confidence, method=method
        )
    }
    for m, a, b in (("tpr", TP, FN), ("fpr", FP, TN)):
        out[m] = rate_ci(
            r[m],
            cells[:, a],
            cells[:, a] + cells[:, b],
            kish_n(cells, sq, (a, b)),
            confidence=confidence,
            method=method,
        )
    return n_eff, out
