"""Using proxy posteriors: multiple imputation with Rubin's rules, or threshold assignment.

A probability-weighted estimate (each row counts in every group with its
posterior) has no sampling variance for the proxy itself. Multiple imputation
draws one race per row from its posterior, ``m`` times, computes the estimate
and its complete-data variance on each draw, and combines them with Rubin's
rules (Rubin 1987; Barnard & Rubin 1999 for small samples), so that the
interval also carries the uncertainty of the proxy.

Threshold assignment (a row gets the race whose posterior is at least 0.8,
otherwise no race) is the older practice; it drops uncertain rows and is
reported beside the weighted estimates for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

UNASSIGNED = "unassigned"


def _posterior_matrix(posteriors: pd.DataFrame | np.ndarray) -> np.ndarray:
    p = np.asarray(posteriors, dtype=float)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"posteriors: a (rows, groups) array is needed, got shape {p.shape}")
    bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p.sum(axis=1) <= 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"posteriors: row {row} is not a probability vector ({p[row].tolist()}); "
            "every row needs finite, non-negative values with a positive sum"
        )
    return p / p.sum(axis=1, keepdims=True)


def draw_races(posteriors: pd.DataFrame | np.ndarray, *, m: int, seed: int) -> np.ndarray:
    """``m`` independent draws of one group per row from its posterior (seeded).

    Returns an int array of shape ``(m, rows)`` of column positions: with a
    DataFrame, ``posteriors.columns[codes]`` gives the labels. One uniform number
    per row and draw, compared with the row's cumulative posterior.

    >>> draw_races(np.array([[1.0, 0.0], [0.0, 1.0]]), m=2, seed=0).tolist()
    [[0, 1], [0, 1]]
    """
    if m < 1:
        raise ValueError(f"m: at least one imputation is needed, got {m}")
    p = _posterior_matrix(posteriors)
    # column-major: one comparison per group column on contiguous memory (the last
    # column is never passed, so rounding never leaves a row without a group)
    cum = np.asfortranarray(np.cumsum(p, axis=1))
    rng = np.random.default_rng(seed)
    rows = int(p.shape[0])
    out = np.zeros((m, rows), dtype=np.int64)
    for j in range(m):
        u = rng.random(rows)
        for c in range(p.shape[1] - 1):
            out[j] += u >= cum[:, c]
    return out


def imputed_labels(posteriors: pd.DataFrame, *, m: int, seed: int) -> list[pd.Categorical]:
    """:func:`draw_races` as ``m`` categoricals with the posterior columns as categories."""
    codes = draw_races(posteriors, m=m, seed=seed)
    cats = [str(c) for c in posteriors.columns]
    return [pd.Categorical.from_codes(row, categories=cats) for row in codes]


@dataclass(frozen=True)
class RubinResult:
    """Rubin's rules over ``m`` imputations (arrays when the inputs had extra dimensions).

    ``estimate`` is the mean of the estimates, ``within`` the mean complete-data
    variance W, ``between`` the variance of the estimates B, ``variance`` the total
    T = W + (1 + 1/m) B, ``df`` the degrees of freedom of the t reference
    distribution and ``missing_information`` the fraction of missing information
    (1 + 1/m) B / T.
    """

    estimate: Any
    variance: Any
    within: Any
    between: Any
    df: Any
    missing_information: Any
    m: int

    def ci(self, confidence: float = 0.95) -> tuple[Any, Any]:
        """Interval estimate +- t(df) * sqrt(T)."""
        t = _st.t.ppf(0.5 + confidence / 2, self.df)
        half = t * np.sqrt(self.variance)
        return self.estimate - half, self.estimate + half

    def p_value(self, null: float = 0.0) -> Any:
        """Two-sided p-value of estimate = ``null`` (Wald statistic, t with df)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (np.asarray(self.estimate) - null) / np.sqrt(self.variance)
        return 2 * _st.t.sf(np.abs(t), self.df)


def rubin(estimates: Any, variances: Any, *, df_complete: float | None = None) -> RubinResult:
    """Combine ``m`` estimates and their complete-data variances (first axis: imputation).

    Degrees of freedom: Rubin (1987) ``(m - 1) (1 + 1/r)^2`` with ``r = (1 + 1/m) B / W``;
    with ``df_complete`` (the complete-data degrees of freedom, e.g. ``n - k``) the
    Barnard & Rubin (1999) small-sample version
    ``1 / (1 / df_rubin + 1 / df_observed)``, ``df_observed = (v + 1) / (v + 3) v (1 - γ)``.
    Without between-imputation variance the df is ``df_complete`` (or infinite).
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.shape != u.shape or q.ndim < 1:
        raise ValueError(
            f"estimates {q.shape} and variances {u.shape}: one per imputation, same shape"
        )
    m = q.shape[0]
    if m < 2:
        raise ValueError(f"estimates: Rubin's rules need at least two imputations, got {m}")
    if (u < 0).any():
        raise ValueError("variances: must be non-negative")
    qbar = q.mean(axis=0)
    w = u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = w + (1 + 1 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(t > 0, (1 + 1 / m) * b / t, 0.0)
        r = np.where(w > 0, (1 + 1 / m) * b / w, np.inf)
        df_old = np.where(b > 0, (m - 1) * (1 + 1 / r) ** 2, np.inf)
        if df_complete is not None:
            v = float(df_complete)
            df_obs = (v + 1) / (v + 3) * v * (1 - gamma)
            df = np.where(b > 0, 1 / (1 / df_old + 1 / df_obs), v)
        else:
            df = df_old
    return RubinResult(
        estimate=_scalar(qbar),
        variance=_scalar(t),
        within=_scalar(w),
        between=_scalar(b),
        df=_scalar(df),
        missing_information=_scalar(gamma),
        m=m,
    )


def _scalar(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x


def assign_by_threshold(
    posteriors: pd.DataFrame, *, threshold: float = 0.8, unassigned: str = UNASSIGNED
) -> pd.Categorical:
    """The group whose posterior is at least ``threshold``, else ``unassigned``.

    With ``threshold > 0.5`` at most one group qualifies. Categories: the posterior
    columns, then ``unassigned``.
    """
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"threshold: must be in (0.5, 1], got {threshold}")
    p = _posterior_matrix(posteriors)
    cats = [str(c) for c in posteriors.columns]
    if unassigned in cats:
        raise ValueError(f"unassigned: {unassigned!r} is already a posterior column")
    best = p.argmax(axis=1)
    sure = p[np.arange(len(p)), best] >= threshold
    codes = np.where(sure, best, len(cats))
    return pd.Categorical.from_codes(codes, categories=[*cats, unassigned])
