"""Intervals and tests for paired differences over base texts, plain or cluster-robust.

The text probes (counterfactual-text, pairwise-choice) compare every group with
the reference group on the same base texts. With independent base texts (a
dataset column) a Student-t interval and the paired t-test apply; with built-in
templates the units share templates and names, so every interval and p-value uses
two-way cluster-robust standard errors (:func:`cluster_robust_se`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

PAIRED_TEST = "paired t-test on per-text score differences (two-sided)"
CLUSTERED_TEST = (
    "paired t-test on per-text score differences (two-sided), two-way cluster-robust "
    "standard errors over templates and names"
)


def t_interval(x: np.ndarray, confidence: float, lo: float, hi: float) -> list[float] | None:
    """Student-t interval for the mean of ``x`` clipped to [lo, hi]; None below two values."""
    n = x.size
    if n < 2:
        return None
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    m = float(x.mean())
    return [max(lo, m - half), min(hi, m + half)]


def paired_p_value(diff: np.ndarray) -> float | None:
    """Two-sided paired t-test of mean(diff) == 0 (1.0 when every difference is 0)."""
    n = diff.size
    if n < 2:
        return None
    m, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(m)):
        return 1.0 if abs(m) <= 1e-12 else 0.0
    t = m / (sd / math.sqrt(n))
    return float(2 * _st.t.sf(abs(t), n - 1))


def cluster_robust_se(x: np.ndarray, clusters: np.ndarray) -> tuple[float, int] | None:
    """Standard error of ``mean(x)`` with two-way cluster-robust variance, and its df.

    ``clusters`` has one column per clustering (here: template, name pair); the
    variance is Cameron, Gelbach & Miller's (2011) V_1 + V_2 - V_12 with the
    small-sample factor G/(G-1) per clustering, V_12 the heteroskedasticity-robust
    term of the cells (each row its own cell). Falls back to the larger one-way
    variance if the sum is not positive. A clustering with fewer than two
    clusters is left out. Returns None below two rows or with no usable clustering;
    df is (fewest clusters - 1).
    """
    n = x.size
    if n < 2:
        return None
    e = x - x.mean()
    parts: list[float] = []
    sizes: list[int] = []
    for k in range(clusters.shape[1]):
        _, ids = np.unique(clusters[:, k], return_inverse=True)
        g = int(ids.max()) + 1
        if g < 2:
            continue
        sums = np.bincount(ids, weights=e, minlength=g)
        parts.append(g / (g - 1) * float(sums @ sums) / n**2)
        sizes.append(g)
    if not parts:
        return None
    var = sum(parts)
    if len(parts) == 2:
        var -= n / (n - 1) * float(e @ e) / n**2
        if var <= 0:
            var = max(parts)
    return math.sqrt(max(var, 0.0)), min(sizes) - 1


def clustered_interval(
    x: np.ndarray, clusters: np.ndarray, confidence: float, lo: float, hi: float
) -> list[float] | None:
    """Interval for the mean of ``x`` with cluster-robust standard errors, clipped."""
    se = cluster_robust_se(x, clusters)
    if se is None:
        return None
    half = float(_st.t.ppf(0.5 + confidence / 2, se[1])) * se[0]
    m = float(x.mean())
    return [max(lo, m - half), min(hi, m + half)]


def clustered_p_value(diff: np.ndarray, clusters: np.ndarray) -> float | None:
    """Two-sided test of mean(diff) == 0 with cluster-robust standard errors."""
    se = cluster_robust_se(diff, clusters)
    if se is None:
        return None
    m = float(diff.mean())
    if se[0] <= 1e-12 * max(1.0, abs(m)):
        return 1.0 if abs(m) <= 1e-12 else 0.0
    return float(2 * _st.t.sf(abs(m / se[0]), se[1]))


def mean_ci(
    x: np.ndarray, clusters: np.ndarray | None, confidence: float, lo: float, hi: float
) -> list[float] | None:
    """The interval for the mean of ``x``: Student-t, or cluster-robust with ``clusters``."""
    if clusters is None:
        return t_interval(x, confidence, lo, hi)
    return clustered_interval(x, clusters, confidence, lo, hi)


def mean_p_value(diff: np.ndarray, clusters: np.ndarray | None) -> float | None:
    """The paired test of mean(diff) == 0: plain, or cluster-robust with ``clusters``."""
    return paired_p_value(diff) if clusters is None else clustered_p_value(diff, clusters)
