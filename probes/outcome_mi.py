"""Continuous-outcome disparities by a race proxy: multiple imputation with Rubin's rules.

Regressing the outcome on the posterior columns, or comparing probability-weighted
means, measures a gap with the proxy's error left in. Here race is imputed ``m``
times and each completed data set is analysed as if race were recorded: OLS (WLS
with weights) of the outcome on group indicators, HC3 robust errors (statsmodels),
for the difference and, with the controls added, the adjusted difference; the
standardized mean difference with its Hedges & Olkin variance. Rubin's rules
combine the draws (Barnard & Rubin degrees of freedom), so each estimate's interval
and p-value include the proxy's uncertainty.

The draws come from the posterior given the outcome, P(r | s, g, y) ∝ P(r | s, g)
f(y | r, x), where f is the normal linear model ``y = α_r + x β + ε`` fitted by EM
(a mixture regression whose mixing weights are each row's posterior), refitted for
each draw on Bayesian-bootstrap weights (Rubin 1987's "proper" imputation: the draws
carry the uncertainty of the fitted model, not only of race). An imputation
model that leaves the outcome out would spread each group's outcomes over the
others and attenuate every gap (Rubin 1987: the imputation model must contain the
analysis model). With decisions (``y_pred``) the prior is first updated by the
decision (:func:`probes.proxy_groups.outcome_posteriors`), since outcomes such as an
APR exist only for approved applicants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from probes.outcome_stats import _orient, _orient_ci, control_matrix, group_stats, robust_fit, smd
from probes.proxy import draw_races, rubin
from probes.stats import holm
from probes.util import finite_or_none

MI_DRAWS = 20
#: the fields computed by multiple imputation; the posterior-membership value is kept
#: beside each as ``<field>_weighted``
IMPUTED = ("difference", "standardized_mean_difference", "adjusted_difference")


def outcome_mixture_posteriors(
    prior: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    iterations: int = 200,
    tol: float = 1e-7,
) -> np.ndarray:
    """P(r | proxy, outcome) under ``y = α_r + x β + N(0, σ²)``, fitted by EM.

    ``prior`` (rows, groups) are the proxy's posteriors, ``x`` (rows, k) the controls
    (k may be 0), ``w`` row weights. The M-step is the weighted least-squares fit over
    the rows expanded by group (weights ``w q_ir``) from its normal equations, which
    need no expansion because each row's memberships sum to one.
    """
    n, k = prior.shape
    q = prior
    xw = x * w[:, None]
    xx = xw.T @ x
    xy = xw.T @ y
    total = float(w.sum())
    alpha = np.zeros(k)
    for _ in range(iterations):
        a = q * w[:, None]
        top = np.hstack([np.diag(a.sum(axis=0)), a.T @ x])
        bottom = np.hstack([x.T @ a, xx])
        coef = np.linalg.lstsq(np.vstack([top, bottom]), np.concatenate([a.T @ y, xy]))[0]
        new_alpha, beta = coef[:k], coef[k:]
        e = y - x @ beta
        resid2 = (e[:, None] - new_alpha[None, :]) ** 2
        sigma2 = max(float((a * resid2).sum()) / total, 1e-12)
        loglik = -0.5 * resid2 / sigma2
        loglik -= loglik.max(axis=1, keepdims=True)
        q = prior * np.exp(loglik)
        q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
        done = np.max(np.abs(new_alpha - alpha)) < tol * max(1.0, float(np.sqrt(sigma2)))
        alpha = new_alpha
        if done:
            break
    return np.asarray(q)


def _draw_estimates(
    codes: np.ndarray,
    names: list[str],
    others: list[str],
    ref: str,
    y: np.ndarray,
    ctrl: pd.DataFrame | None,
    w: np.ndarray,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One completed data set: (estimates, variances) of shape (3, groups) and the df."""
    onehot = np.zeros((len(y), len(names)))
    onehot[np.arange(len(y)), codes] = 1.0
    sizes = onehot.sum(axis=0)
    est = np.full((len(IMPUTED), len(others)), np.nan)
    var = np.full_like(est, np.nan)
    have = [g for g in others if sizes[names.index(g)] >= 2]
    if sizes[names.index(ref)] < 2 or not have:
        return est, var, float("nan")
    dummies = pd.DataFrame(onehot[:, [names.index(g) for g in have]], columns=have)
    raw = robust_fit(y, dummies, None, w, confidence)
    adj = raw if ctrl is None else robust_fit(y, dummies, ctrl, w, confidence)
    ref_stats = group_stats(y, onehot[:, names.index(ref)], w)
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    for g in have:
        j = others.index(g)
        d, d_ci = smd(group_stats(y, onehot[:, names.index(g)], w), ref_stats, confidence)
        d_se = np.nan if d_ci is None else (d_ci[1] - d_ci[0]) / (2 * z)
        est[:, j] = raw.estimate[g], d, adj.estimate[g]
        var[:, j] = raw.se[g] ** 2, d_se**2, adj.se[g] ** 2
    return est, var, adj.df_resid


def imputed_comparisons(
    *,
    outcome: np.ndarray,
    posteriors: pd.DataFrame,
    others: list[str],
    reference: str,
    controls: pd.DataFrame | None,
    weights: np.ndarray | None,
    decision_posteriors: np.ndarray | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    m: int = MI_DRAWS,
) -> dict[str, dict[str, Any]]:
    """Rubin-combined difference, SMD and adjusted difference of each group in ``others``.

    Returns ``{group: {field: value, field_ci: [lo, hi], field_p_value: p}}`` for the
    fields in :data:`IMPUTED`; a group with fewer than two imputed members in some draw
    gets ``None`` values. Rows with a missing outcome or control, or a zero weight, are
    left out as :func:`probes.outcome_stats.compare_outcomes` does.
    """
    y = np.asarray(outcome, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(y) & (w > 0)
    if controls is not None and controls.shape[1]:
        keep &= ~controls.isna().any(axis=1).to_numpy()
    names = [str(c) for c in posteriors.columns]
    prior = posteriors.to_numpy(dtype=float) if decision_posteriors is None else decision_posteriors
    prior, y, w = prior[keep], y[keep], w[keep]
    ctrl = None
    if controls is not None and controls.shape[1]:
        ctrl, _ = control_matrix(controls.loc[keep], list(controls.columns))
        ctrl = ctrl if ctrl.shape[1] else None
    x = np.zeros((len(y), 0)) if ctrl is None else ctrl.to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    ests, vars_, dfs = [], [], []
    for _ in range(m):
        # proper imputation: each draw refits the outcome model on Bayesian-bootstrap
        # weights, so the draws carry the uncertainty of the fitted group means too
        q = outcome_mixture_posteriors(prior, y, x, w * rng.exponential(size=len(w)))
        codes = draw_races(q, m=1, seed=int(rng.integers(2**63)))[0]
        e, v, df = _draw_estimates(codes, names, others, reference, y, ctrl, w, confidence)
        ests.append(e)
        vars_.append(v)
        dfs.append(df)
    est, var = np.array(ests), np.array(vars_)
    defined = np.isfinite(est).all(axis=0) & np.isfinite(var).all(axis=0)
    res = rubin(np.where(defined, est, 0.0), np.where(defined, var, 0.0),
                df_complete=float(np.nanmin(dfs)) if np.isfinite(dfs).any() else None)  # fmt: skip
    lo, hi = res.ci(confidence)
    p = np.asarray(res.p_value(0.0), dtype=float)
    out: dict[str, dict[str, Any]] = {}
    for j, g in enumerate(others):
        fields: dict[str, Any] = {}
        for i, name in enumerate(IMPUTED):
            ok = bool(defined[i, j])
            fields[name] = finite_or_none(res.estimate[i, j]) if ok else None
            ci = [finite_or_none(lo[i, j]), finite_or_none(hi[i, j])]
            fields[f"{name}_ci"] = ci if ok and None not in ci else None
            fields[f"{name}_p_value"] = finite_or_none(p[i, j]) if ok else None
        out[g] = fields
    return out


def apply_imputed(
    groups: list[dict[str, Any]], imputed: dict[str, dict[str, Any]], adverse: str
) -> None:
    """Replace the posterior-membership comparisons of ``groups`` by the imputed ones
    (kept beside as ``<field>_weighted``), with Holm adjustments over the groups."""
    others = [g["group"] for g in groups if g["group"] in imputed]
    p_raw = holm([imputed[g]["difference_p_value"] for g in others])
    p_adj = holm([imputed[g]["adjusted_difference_p_value"] for g in others])
    for out in groups:
        g = out["group"]
        if g not in imputed:
            continue
        mi, i = imputed[g], others.index(g)
        for name in IMPUTED:
            out[f"{name}_weighted"] = out.get(name)
        adj = mi["adjusted_difference"]
        adj_ci = mi["adjusted_difference_ci"]
        out.update(
            difference=mi["difference"],
            difference_ci=mi["difference_ci"],
            p_value=mi["difference_p_value"],
            p_value_adjusted=p_raw[i],
            standardized_mean_difference=mi["standardized_mean_difference"],
            standardized_mean_difference_ci=mi["standardized_mean_difference_ci"],
            adjusted_difference=adj,
            adjusted_difference_ci=adj_ci,
            adjusted_difference_p_value=mi["adjusted_difference_p_value"],
            adjusted_difference_p_value_holm=p_adj[i],
            adverse_adjusted_difference=_orient(adj, adverse),
            adverse_adjusted_difference_ci=_orient_ci(adj_ci, adverse),
        )
        if mi["difference"] is None:
            out["insufficient_data"] = True
