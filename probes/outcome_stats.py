"""Group comparisons of a continuous outcome (APR, rate spread, credit limit): pure functions.

Groups are given as a *membership* matrix (rows x groups, non-negative, rows
summing to 1): one-hot for an observed attribute, posterior probabilities for a
proxy such as BISG. Row weights multiply the membership. From it:

- per group: weighted mean with a t interval (linearisation variance; Kish
  effective size ``n_effective = (sum w)^2 / sum w^2``), standard deviation;
- against the reference group: the difference (OLS / WLS of the outcome on an
  intercept and the non-reference membership columns; with one-hot membership
  its coefficients are exactly the differences of the group means), the ratio of
  means (delta-method interval on the log scale), the standardized mean difference
  (difference over the pooled standard deviation; Hedges & Olkin interval) and the
  regression-adjusted difference (the same regression plus the controls).
  Regression errors are heteroskedasticity-robust HC3 (MacKinnon & White 1985)
  with t reference distributions (statsmodels).

With posterior membership the regression is the "coefficient" estimator of
disparities under a race proxy (CFPB 2014; Zhang 2018): it does not attenuate
the gap the way differences of probability-weighted means do.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from probes.base import ProbeError
from probes.stats import holm
from probes.util import finite_or_none


@dataclass(frozen=True)
class GroupStats:
    """Weighted summary of one group's outcomes."""

    n: float  # sum of memberships (rows, for one-hot membership)
    n_effective: float
    weight: float
    mean: float
    sd: float
    se: float


def group_stats(y: np.ndarray, membership: np.ndarray, weights: np.ndarray) -> GroupStats:
    """Weighted mean, SD and SE of ``y``; each row weighs membership x row weight."""
    w = membership * weights
    total = float(w.sum())
    n = float(membership.sum())
    if total <= 0:
        nan = float("nan")
        return GroupStats(n, 0.0, 0.0, nan, nan, nan)
    n_eff = total**2 / float((w**2).sum())
    mean = float((w * y).sum() / total)
    dev = y - mean
    corr = n_eff / (n_eff - 1) if n_eff > 1 else float("nan")
    var = float((w * dev**2).sum() / total) * corr
    se = float(np.sqrt(corr * (w**2 * dev**2).sum()) / total)
    return GroupStats(n, n_eff, total, mean, float(np.sqrt(var)), se)


def t_interval(est: float, se: float, df: float, confidence: float) -> list[float] | None:
    if not (np.isfinite(est) and np.isfinite(se) and df > 0):
        return None
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    return [est - half, est + half]


def smd(a: GroupStats, ref: GroupStats, confidence: float) -> tuple[float, list[float] | None]:
    """Standardized mean difference (a - ref) / pooled SD, with its normal interval."""
    na, nr = a.n_effective, ref.n_effective
    if na < 2 or nr < 2:
        return float("nan"), None
    pooled = np.sqrt(((na - 1) * a.sd**2 + (nr - 1) * ref.sd**2) / (na + nr - 2))
    if not pooled > 0:
        return float("nan"), None
    d = float((a.mean - ref.mean) / pooled)
    se = float(np.sqrt((na + nr) / (na * nr) + d * d / (2 * (na + nr))))
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    return d, [d - z * se, d + z * se]


def ratio(a: GroupStats, ref: GroupStats, confidence: float) -> tuple[float, list[float] | None]:
    """Ratio of means a / ref with a delta-method interval on the log scale (means > 0)."""
    if not (a.mean > 0 and ref.mean > 0):
        return float("nan"), None
    r = a.mean / ref.mean
    se = np.sqrt((a.se / a.mean) ** 2 + (ref.se / ref.mean) ** 2)
    if not np.isfinite(se):
        return r, None
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    return r, [float(r * np.exp(-z * se)), float(r * np.exp(z * se))]


@dataclass(frozen=True)
class Fit:
    """Group coefficients of one robust regression: estimate, SE, p-value, CI per group."""

    estimate: dict[str, float]
    se: dict[str, float]
    p_value: dict[str, float]
    ci: dict[str, list[float] | None]
    r_squared: float
    df_resid: float


def robust_fit(
    y: np.ndarray,
    groups: pd.DataFrame,
    controls: pd.DataFrame | None,
    w: np.ndarray,
    confidence: float,
) -> Fit:
    """WLS of ``y`` on an intercept, ``groups`` (non-reference membership) and ``controls``.

    HC3 covariance, t tests with the residual degrees of freedom. Leverage-one rows
    (a group of one) give undefined (NaN) errors rather than warnings.
    """
    import statsmodels.api as sm

    parts = [pd.DataFrame({"const": np.ones(len(y))}), groups.reset_index(drop=True)]
    if controls is not None and controls.shape[1]:
        parts.append(controls.reset_index(drop=True))
    x = pd.concat(parts, axis=1).to_numpy(dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # HC3 divides by (1 - leverage): a leverage of one is a NaN error, reported as such
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sm.WLS(y, x, weights=w).fit(cov_type="HC3", use_t=True)
        params = np.asarray(res.params)
        bse = np.asarray(res.bse)
        pvals = np.asarray(res.pvalues)
        r2 = float(res.rsquared)
        df = float(res.df_resid)
    undefined = _leverage_one(x, w)
    bse = np.where(undefined, np.nan, bse)
    pvals = np.where(undefined, np.nan, pvals)
    names = list(groups.columns)
    est = {g: float(params[1 + i]) for i, g in enumerate(names)}
    se = {g: float(bse[1 + i]) for i, g in enumerate(names)}
    p = {g: float(pvals[1 + i]) for i, g in enumerate(names)}
    ci = {g: t_interval(est[g], se[g], df, confidence) for g in names}
    return Fit(est, se, p, ci, r2, df)


def _leverage_one(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Coefficients whose HC3 error is undefined: moved by a row of leverage one.

    Such a row (e.g. the only member of a group) is fitted exactly, so HC3's
    e^2 / (1 - h)^2 is 0 / 0; statsmodels returns rounding noise there.
    """
    xw = x * np.sqrt(w)[:, None]
    xtx_inv = np.linalg.pinv(xw.T @ xw)
    h = np.einsum("ij,jk,ik->i", xw, xtx_inv, xw)
    one = h > 1 - 1e-9
    if not one.any():
        return np.zeros(x.shape[1], dtype=bool)
    influence = np.abs(xw[one] @ xtx_inv)
    return np.asarray((influence > 1e-9 * influence.max()).any(axis=0))


def control_matrix(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Controls as numbers: numeric columns as they are, others one-hot (first level dropped).

    Returns the matrix and the names of columns dropped because they are constant.
    """
    parts: list[pd.DataFrame] = []
    for col in columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            dummies = pd.get_dummies(s.astype(str), prefix=col, drop_first=True, dtype=float)
            parts.append(dummies)
        else:
            parts.append(pd.DataFrame({col: s.to_numpy(dtype=float)}, index=s.index))
    if not parts:
        return pd.DataFrame(index=frame.index), []
    x = pd.concat(parts, axis=1)
    constant = [c for c in x.columns if x[c].nunique(dropna=False) <= 1]
    return x.drop(columns=constant), constant


def full_rank(*blocks: Any) -> bool:
    x = np.column_stack([np.ones(len(blocks[0]))] + [np.asarray(b, dtype=float) for b in blocks])
    return bool(np.linalg.matrix_rank(x) == x.shape[1])


def _num(x: Any) -> float | None:
    return finite_or_none(x)


def _ci(ci: list[float] | None) -> list[float] | None:
    if ci is None or not all(np.isfinite(ci)):
        return None
    return [float(ci[0]), float(ci[1])]


def _count(x: float) -> int | float:
    return int(round(x)) if abs(x - round(x)) < 1e-9 else float(x)


def _orient(value: float | None, adverse: str) -> float | None:
    if value is None:
        return None
    return value if adverse == "higher" else -value if adverse == "lower" else abs(value)


def _orient_ci(ci: list[float] | None, adverse: str) -> list[float] | None:
    """The interval of the oriented value (none for ``either``: |x| has no such interval)."""
    if ci is None or adverse == "either":
        return None
    return ci if adverse == "higher" else [-ci[1], -ci[0]]


def compare_outcomes(
    *,
    outcome: np.ndarray,
    membership: pd.DataFrame,
    controls: pd.DataFrame | None = None,
    weights: np.ndarray | None = None,
    reference: str | None = None,
    adverse: str = "either",
    confidence: float = 0.95,
    min_group_size: int = 30,
    unknown: str = "unknown",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-group outcome statistics against a reference group: ``(groups, summary)``.

    ``membership`` has one column per group and one row per outcome: one-hot for an
    observed attribute, posterior probabilities for a proxy (rows sum to 1).
    ``weights`` are non-negative row weights. Rows with a missing outcome or control,
    or a zero weight, are left out and counted in the summary.
    """
    y = np.asarray(outcome, dtype=float)
    m = membership.to_numpy(dtype=float)
    if m.shape[0] != len(y) or not np.isfinite(m).all() or (m < 0).any():
        raise ProbeError(
            f"membership: one row of finite, non-negative group memberships per outcome is "
            f"needed (got {m.shape[0]} rows for {len(y)} outcomes)"
        )
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(y) & (w > 0)
    missing_controls = np.zeros(len(y), dtype=bool)
    if controls is not None and controls.shape[1]:
        missing_controls = controls.isna().any(axis=1).to_numpy()
    summary: dict[str, Any] = {
        "rows": int(len(y)),
        "rows_missing_outcome": int((~np.isfinite(y)).sum()),
        "rows_missing_controls": int((missing_controls & np.isfinite(y)).sum()),
        "rows_zero_weight": int(((w <= 0) & np.isfinite(y) & ~missing_controls).sum()),
    }
    keep &= ~missing_controls
    y, m, w = y[keep], m[keep], w[keep]
    summary["rows_used"] = int(keep.sum())
    names = [str(c) for c in membership.columns]
    stats = {g: group_stats(y, m[:, j], w) for j, g in enumerate(names)}
    present = [g for g in names if stats[g].weight > 0]
    ref, rule = _reference(reference, present, stats, unknown)
    summary.update(reference_group=ref, reference_rule=rule, adverse=adverse)
    groups = [
        _base_group(g, stats[g], confidence, min_group_size, ref, stats.get(ref or ""))
        for g in names
    ]
    others = [g for g in present if g != ref]
    ctrl = None
    if controls is not None and controls.shape[1]:
        ctrl, constant = control_matrix(controls.loc[keep], list(controls.columns))
        summary["controls_dropped_constant"] = constant
    if (
        ref is None
        or not others
        or len(y) <= 1 + len(others) + (0 if ctrl is None else ctrl.shape[1])
    ):
        summary["reason"] = "fewer than two groups with rows, or too few rows to compare"
        return groups, summary
    dummies = pd.DataFrame(m[:, [names.index(g) for g in others]], columns=others)
    if not full_rank(dummies, *([] if ctrl is None else [ctrl])):
        raise ProbeError(
            "probes[outcome-disparity].controls: the controls are collinear with the groups or "
            f"with each other ({list(controls.columns) if controls is not None else []}); "
            "remove a control that duplicates another or the attribute"
        )
    raw = robust_fit(y, dummies, None, w, confidence)
    adj = raw if ctrl is None else robust_fit(y, dummies, ctrl, w, confidence)
    _add_comparisons(groups, others, stats, ref, raw, adj, confidence, adverse)
    summary["estimator"] = ("WLS" if weights is not None else "OLS") + ", HC3 robust errors"
    summary["r_squared_adjusted_model"] = _num(adj.r_squared)
    smds = [abs(g["standardized_mean_difference"]) for g in groups
            if g.get("standardized_mean_difference") is not None]  # fmt: skip
    adverse_vals = [g["adverse_adjusted_difference"] for g in groups
                    if g.get("adverse_adjusted_difference") is not None]  # fmt: skip
    summary["max_abs_standardized_mean_difference"] = max(smds) if smds else None
    summary["max_adverse_adjusted_difference"] = max(adverse_vals) if adverse_vals else None
    return groups, summary


def _reference(
    reference: str | None, present: list[str], stats: Mapping[str, Any], unknown: str
) -> tuple[str | None, str]:
    if reference is not None:
        if reference not in present:
            raise ProbeError(
                f"probes[outcome-disparity].reference: {reference!r} is not a group with "
                f"outcomes; groups: {', '.join(present)}"
            )
        return reference, "config"
    known = [g for g in present if g != unknown]
    if not known:
        return None, "largest group"
    return max(sorted(known), key=lambda g: stats[g].weight), "largest group"


def _base_group(
    g: str, s: Any, confidence: float, min_size: int, ref: str | None, ref_stats: Any
) -> dict[str, Any]:
    small = s.n_effective < min_size or (ref_stats is not None and ref_stats.n_effective < min_size)
    return {
        "group": g,
        "n": _count(s.n),
        "n_effective": _num(s.n_effective),
        "mean": _num(s.mean),
        "mean_ci": _ci(t_interval(s.mean, s.se, s.n_effective - 1, confidence)),
        "sd": _num(s.sd),
        "reference": g == ref,
        "insufficient_data": bool(small),
    }


def _add_comparisons(
    groups: list[dict[str, Any]],
    others: list[str],
    stats: Mapping[str, Any],
    ref: str,
    raw: Any,
    adj: Any,
    confidence: float,
    adverse: str,
) -> None:
    p_holm = dict(zip(others, holm([_num(raw.p_value[g]) for g in others]), strict=True))
    adj_holm = dict(zip(others, holm([_num(adj.p_value[g]) for g in others]), strict=True))
    for out in groups:
        g = out["group"]
        if g not in others:
            continue
        d, d_ci = smd(stats[g], stats[ref], confidence)
        r, r_ci = ratio(stats[g], stats[ref], confidence)
        adj_diff = _num(adj.estimate[g])
        out.update(
            difference=_num(raw.estimate[g]),
            difference_ci=_ci(raw.ci[g]),
            p_value=_num(raw.p_value[g]),
            p_value_adjusted=_num(p_holm[g]),
            ratio=_num(r),
            ratio_ci=_ci(r_ci),
            standardized_mean_difference=_num(d),
            standardized_mean_difference_ci=_ci(d_ci),
            adjusted_difference=adj_diff,
            adjusted_difference_ci=_ci(adj.ci[g]),
            adjusted_difference_p_value=_num(adj.p_value[g]),
            adjusted_difference_p_value_holm=_num(adj_holm[g]),
            adverse_adjusted_difference=_orient(adj_diff, adverse),
            adverse_adjusted_difference_ci=_orient_ci(_ci(adj.ci[g]), adverse),
        )
