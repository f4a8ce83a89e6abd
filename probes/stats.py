"""Interval estimates and tests.

Most are computed from counts (vectorised over groups); the scalar ones at the end
(a mean's t interval, a rate's Wilson interval, McNemar's and Wilcoxon's paired tests)
serve the tabular flip tests.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import stats as _st

CIMethod = Literal["wilson", "exact"]


def _z(confidence: float) -> float:
    return float(_st.norm.ppf(0.5 + confidence / 2.0))


def proportion_ci(
    k: np.ndarray, n: np.ndarray, *, confidence: float = 0.95, method: CIMethod = "wilson"
) -> tuple[np.ndarray, np.ndarray]:
    """CI for k/n: Wilson score (default) or Clopper-Pearson exact; NaN where n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "exact":
            a = 1.0 - confidence
            lo = np.where(k > 0, _st.beta.ppf(a / 2, k, n - k + 1), 0.0)
            hi = np.where(k < n, _st.beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
        else:
            z = _z(confidence)
            p = k / n
            denom = 1 + z * z / n
            centre = (p + z * z / (2 * n)) / denom
            half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
            lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    bad = n <= 0
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def ratio_ci(
    k1: np.ndarray, n1: np.ndarray, k2: float, n2: float, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Katz log CI for the risk ratio (k1/n1)/(k2/n2); 0.5 added to zero cells."""
    k1 = np.asarray(k1, dtype=float)
    n1 = np.asarray(n1, dtype=float)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = (k1 == 0) | (k2 == 0)
        a = np.where(zero, k1 + 0.5, k1)
        na = np.where(zero, n1 + 1.0, n1)
        b = np.where(zero, k2 + 0.5, k2)
        nb = np.where(zero, n2 + 1.0, n2)
        log_r = np.log((a / na) / (b / nb))
        se = np.sqrt(np.maximum(1 / a - 1 / na + 1 / b - 1 / nb, 0.0))
        lo, hi = np.exp(log_r - z * se), np.exp(log_r + z * se)
    bad = (n1 <= 0) | (n2 <= 0) | (k2 <= 0)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def two_proportion_pvalue(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value for k1/n1 vs k2/n2.

    Fisher's exact test when any expected cell count is below 5, otherwise
    Pearson's chi-square test without continuity correction (the two-sample z
    test). None when either group is empty.
    """
    if n1 <= 0 or n2 <= 0:
        return None
    table = np.array([[k1, n1 - k1], [k2, n2 - k2]], dtype=float)
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 1.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    if expected.min() < 5:
        return float(_st.fisher_exact(table.astype(int))[1])
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(_st.chi2.sf(chi2, 1))


def two_proportion_pvalues(
    k1: np.ndarray, n1: np.ndarray, k2: float, n2: float
) -> list[float | None]:
    """:func:`two_proportion_pvalue` of every group vs one reference, vectorised.

    The chi-square statistic is computed for all groups at once; only groups with an
    expected count below 5 go through Fisher's exact test one by one.
    """
    k1 = np.asarray(k1, dtype=float)
    n1 = np.asarray(n1, dtype=float)
    if n2 <= 0:
        return [None] * len(k1)
    a, b = k1, n1 - k1
    c, d = np.full_like(k1, k2), np.full_like(k1, n2 - k2)
    total = a + b + c + d
    col1, col2 = a + c, b + d
    with np.errstate(divide="ignore", invalid="ignore"):
        ea, eb = n1 * col1 / total, n1 * col2 / total
        ec, ed = n2 * col1 / total, n2 * col2 / total
        chi2 = (a - ea) ** 2 / ea + (b - eb) ** 2 / eb + (c - ec) ** 2 / ec + (d - ed) ** 2 / ed
    p = _st.chi2.sf(chi2, 1)
    out: list[float | None] = []
    exact: dict[tuple[int, int], float | None] = {}  # small groups repeat the same tables
    for i in range(len(k1)):
        if n1[i] <= 0:
            out.append(None)
        elif col1[i] == 0 or col2[i] == 0:
            out.append(1.0)
        elif min(ea[i], eb[i], ec[i], ed[i]) < 5:
            key = (int(k1[i]), int(n1[i]))
            if key not in exact:
                exact[key] = two_proportion_pvalue(key[0], key[1], int(k2), int(n2))
            out.append(exact[key])
        else:
            out.append(float(p[i]))
    return out


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None entries are kept and not counted)."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = list(p_values)
    order = sorted(idx, key=lambda i: p_values[i])  # type: ignore[arg-type,return-value]
    running = 0.0
    for rank, i in enumerate(order):
        p = p_values[i]
        assert p is not None
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def bootstrap_counts(cells: np.ndarray, *, replicates: int, seed: int) -> np.ndarray:
    """Row bootstrap done on counts.

    Resampling N rows with replacement gives cell counts distributed as
    Multinomial(N, cells / N) over all (group x confusion-cell) cells, so drawing
    that multinomial is exactly the row bootstrap, at a cost independent of N.
    Returns an array of shape ``(replicates, *cells.shape)``.
    """
    flat = np.asarray(cells, dtype=np.int64).ravel()
    total = int(flat.sum())
    rng = np.random.default_rng(seed)
    if total == 0:
        return np.zeros((replicates, *cells.shape), dtype=np.int64)
    draws = rng.multinomial(total, flat / total, size=replicates)
    return draws.reshape((replicates, *cells.shape))


def bootstrap_weighted_counts(
    cells: np.ndarray, sq: np.ndarray, *, replicates: int, seed: int
) -> np.ndarray:
    """Poisson bootstrap of weighted rows, done on the counts.

    The Poisson bootstrap gives every row a Poisson(1) multiplicity ``m_i``, so a cell's
    replicate sum ``sum_i m_i w_i`` has mean ``W = sum w`` and variance ``S = sum w^2``.
    Each cell is drawn as ``Poisson(W^2 / S) * S / W`` (its Kish effective rows, each of
    weight ``S / W``): the same mean and variance, exactly the row draw when the cell's
    weights are equal, and a function of the merged counts alone, so in-memory, chunked
    and sharded audits draw the same replicates for one seed.
    Returns an array of shape ``(replicates, *cells.shape)``.
    """
    w = np.asarray(cells, dtype=float).ravel()
    s2 = np.asarray(sq, dtype=float).ravel()
    live = (w > 0) & (s2 > 0)
    lam = np.where(live, w * w / np.where(live, s2, 1.0), 0.0)
    unit = np.where(live, s2 / np.where(live, w, 1.0), 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.poisson(lam, size=(replicates, lam.size)) * unit
    return draws.reshape((replicates, *np.shape(cells)))


def homogeneity_pvalue(k: np.ndarray, n: np.ndarray) -> float | None:
    """Omnibus test that all groups share one rate (no reference-group selection).

    Pearson chi-square on the groups x (selected, not selected) table; Fisher's
    exact test for a 2 x 2 table with an expected count below 5.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    keep = n > 0
    k, n = k[keep], n[keep]
    if k.size < 2:
        return None
    if k.size == 2:
        return two_proportion_pvalue(int(k[0]), int(n[0]), int(k[1]), int(n[1]))
    table = np.stack([k, n - k], axis=1)
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 1.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(_st.chi2.sf(chi2, k.size - 1))


def mean_with_ci(x: np.ndarray, confidence: float) -> tuple[float | None, list[float] | None]:
    """Mean and Student-t interval (None with fewer than two values)."""
    n = len(x)
    if n == 0:
        return None, None
    m = float(np.mean(x))
    if n < 2:
        return m, None
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n))
    return m, [m - half, m + half]


def rate_with_ci(k: int, n: int, confidence: float) -> tuple[float | None, list[float] | None]:
    """Rate ``k / n`` and its Wilson interval (None for ``n == 0``)."""
    if n == 0:
        return None, None
    lo, hi = proportion_ci(np.array([k]), np.array([n]), confidence=confidence)
    return k / n, [float(lo[0]), float(hi[0])]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 without any)."""
    return 1.0 if b + c == 0 else float(_st.binomtest(b, b + c, 0.5).pvalue)


def wilcoxon_p(diff: np.ndarray) -> float:
    """Wilcoxon signed-rank p-value of paired differences (zeros dropped; 1.0 if all zero)."""
    nz = diff[diff != 0]
    if nz.size == 0:
        return 1.0
    method = "exact" if nz.size <= 50 and np.unique(np.abs(nz)).size == nz.size else "asymptotic"
    return float(_st.wilcoxon(nz, method=method).pvalue)
