"""Demographic metrics by a race proxy (``dataset.proxy``): attribute ``race_proxy``.

- **Probability weighting** (the CFPB method): each row counts in every proxy group
  with its posterior, times its ``dataset.weight``: the weighted confusion counts (as
  the one weighted count path would give for the rows expanded six-fold) come from two
  matrix products, so every rate, ``n_effective`` (Kish) and the reported
  ``impact_ratio_weighted`` are the probability-weighted ones.
- **Multiple imputation**: race is drawn from the posteriors ``MI_DRAWS`` times
  (seeded); each draw gives a log impact ratio and its Katz variance (on the Kish
  effective sizes), combined by Rubin's rules. The judged ``impact_ratio`` is Rubin's
  estimate (the geometric mean of the draws' ratios), with its CI and p-value, so the
  value and its interval agree and include the proxy's uncertainty; the weighted
  ratio, attenuated towards parity, is kept beside it.
- **Threshold assignment** (a race where the posterior is at least 0.8) is reported
  beside it in ``summary.proxy.threshold`` for comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from probes.base import ProbeEntry, ProbeInput
from probes.counts import GroupCounts
from probes.proxy import RACES, assign_by_threshold, draw_races, rubin
from probes.stats import holm
from probes.util import finite_or_none

PROXY_ATTRIBUTE = "race_proxy"
MI_DRAWS = 20
THRESHOLD = 0.8


def _rates_by(
    codes: np.ndarray, groups: int, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted selection rate, weighted size and Kish effective size per group code."""
    n = np.bincount(codes, weights=w, minlength=groups)
    sel = np.bincount(codes, weights=w * y, minlength=groups)
    sq = np.bincount(codes, weights=w * w, minlength=groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sel / n, n, np.where(sq > 0, n * n / np.where(sq > 0, sq, 1), 0.0)


def _log_ratio(rate: np.ndarray, n_eff: np.ndarray, ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Log impact ratio vs ``ref`` and its Katz variance (0.5 added to zero cells)."""
    k = rate * n_eff
    zero = (k <= 0) | (k[ref] <= 0)
    k1, n1 = np.where(zero, k + 0.5, k), np.where(zero, n_eff + 1.0, n_eff)
    k2, n2 = np.where(zero, k[ref] + 0.5, k[ref]), np.where(zero, n_eff[ref] + 1.0, n_eff[ref])
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.log(k1 / n1) - np.log(k2 / n2)
        var = 1 / k1 - 1 / n1 + 1 / k2 - 1 / n2
    return est, var


def _loglik(
    p1: np.ndarray, p0: np.ndarray, w1: np.ndarray, w0: np.ndarray, mu: np.ndarray
) -> float:
    d1, d0 = p1 @ mu, p0 @ (1 - mu)
    if (d1 <= 0).any() or (d0 <= 0).any():
        return -np.inf
    return float(w1 @ np.log(d1) + w0 @ np.log(d0))


def _newton_rates(
    p1: np.ndarray,
    p0: np.ndarray,
    w1: np.ndarray,
    w0: np.ndarray,
    mu: np.ndarray,
    *,
    tol: float,
    steps: int = 50,
) -> np.ndarray | None:
    """The groups' selection rates by projected Newton steps with backtracking: the
    mixture's log-likelihood is concave in them (a sum of logs of linear functions),
    so a few steps reach the maximum EM creeps towards. None when a step cannot
    raise the likelihood (then EM takes over)."""
    cur = _loglik(p1, p0, w1, w0, mu)
    k = len(mu)
    for _ in range(steps):
        d1 = np.maximum(p1 @ mu, 1e-300)
        d0 = np.maximum(p0 @ (1 - mu), 1e-300)
        a1, a0 = w1 / d1, w0 / d0
        grad = a1 @ p1 - a0 @ p0
        curv = (p1 * (a1 / d1)[:, None]).T @ p1 + (p0 * (a0 / d0)[:, None]).T @ p0
        ridge = 1e-10 * max(float(np.trace(curv)), 1e-300) * np.eye(k)
        step = np.linalg.lstsq(curv + ridge, grad, rcond=None)[0]
        t = 1.0
        while True:
            new = np.clip(mu + t * step, 1e-6, 1 - 1e-6)
            val = _loglik(p1, p0, w1, w0, new)
            if val >= cur - 1e-12 * abs(cur):
                break
            t /= 2
            if t < 1e-6:
                return None
        done = np.max(np.abs(new - mu)) < tol
        mu, cur = new, val
        if done:
            return mu
    return None


def outcome_posteriors(
    posteriors: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    *,
    iterations: int = 200,
    tol: float = 1e-6,
) -> np.ndarray:
    """P(race | names, geography, decision): the proxy's posteriors updated by each row's
    decision under the groups' selection rates, fitted by EM (the rates are the mixture's
    maximum-likelihood estimates). Imputing from these keeps the outcome in the
    imputation model, so the imputed groups are not attenuated towards each other."""
    p = np.clip(posteriors, 0.0, None)
    sel = y > 0
    # column-major: the matrix-vector products below run about 3x faster on it
    p1, p0 = np.asfortranarray(p[sel]), np.asfortranarray(p[~sel])
    w1, w0 = weight[sel], weight[~sel]
    mu = np.clip((w1 @ p1) / np.maximum(weight @ p, 1e-300), 1e-6, 1 - 1e-6)
    fitted = _newton_rates(p1, p0, w1, w0, mu, tol=tol)
    if fitted is not None:
        mu = fitted
    else:  # EM: slower, but every step raises the likelihood
        for _ in range(iterations):  # two passes over the rows per step
            d1 = np.maximum(p1 @ mu, 1e-300)
            d0 = np.maximum(p0 @ (1 - mu), 1e-300)
            hits = mu * ((w1 / d1) @ p1)
            misses = (1 - mu) * ((w0 / d0) @ p0)
            new = np.clip(hits / np.maximum(hits + misses, 1e-300), 1e-6, 1 - 1e-6)
            done = np.max(np.abs(new - mu)) < tol
            mu = new
            if done:
                break
    q = np.empty_like(p)
    q[sel] = p1 * mu
    q[~sel] = p0 * (1 - mu)
    q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
    return q


def imputed_impact(
    posteriors: np.ndarray,
    y_pred: np.ndarray,
    weight: np.ndarray,
    *,
    ref: int,
    seed: int,
    confidence: float,
    m: int = MI_DRAWS,
    outcome_aware: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float | None]]:
    """Rubin-combined impact ratio, its CI and p-value per proxy group (``m`` draws);
    ``outcome_aware=False`` draws from the proxy's posteriors alone (for comparison)."""
    y = y_pred.astype(float)
    source = outcome_posteriors(posteriors, y, weight) if outcome_aware else posteriors
    draws = draw_races(source, m=m, seed=seed)
    est, var = [], []
    for codes in draws:
        rate, _, n_eff = _rates_by(codes, len(RACES), y, weight)
        e, v = _log_ratio(rate, n_eff, ref)
        est.append(e)
        var.append(v)
    q, u = np.nan_to_num(np.array(est)), np.nan_to_num(np.array(var), nan=np.inf)
    res = rubin(q, np.where(np.isfinite(u), u, 1e12))
    lo, hi = res.ci(confidence)
    p = np.asarray(res.p_value(0.0), dtype=float)
    p_values: list[float | None] = [None if i == ref else float(p[i]) for i in range(len(RACES))]
    return np.exp(np.asarray(res.estimate)), np.exp(lo), np.exp(hi), p_values


def threshold_summary(
    posteriors: pd.DataFrame, y_pred: np.ndarray, weight: np.ndarray, reference: str
) -> dict[str, Any]:
    """Selection rates and impact ratios with race assigned at posterior >= 0.8."""
    assigned = assign_by_threshold(posteriors, threshold=THRESHOLD)
    codes = np.asarray(assigned.codes, dtype=np.int64)
    rate, n, _ = _rates_by(codes, len(RACES) + 1, y_pred.astype(float), weight)
    ref = RACES.index(reference) if reference in RACES else int(np.nanargmax(rate[: len(RACES)]))
    groups = {
        race: {
            "n": float(n[i]),
            "selection_rate": finite_or_none(rate[i]),
            "impact_ratio": finite_or_none(rate[i] / rate[ref]) if rate[ref] > 0 else None,
        }
        for i, race in enumerate(RACES)
    }
    total = float(n.sum())
    return {
        "threshold": THRESHOLD,
        "assigned_share": finite_or_none(1 - n[len(RACES)] / total) if total else None,
        "reference_group": RACES[ref],
        "groups": groups,
    }


def posterior_counts(
    post: np.ndarray, y_pred: np.ndarray, y_true: np.ndarray | None, base: np.ndarray
) -> GroupCounts:
    """Probability-weighted confusion counts of the proxy groups: each row in every group
    with weight ``base x posterior`` (and its square beside, for Kish). The same counts as
    :func:`probes.counts.count_groups` over the rows expanded six-fold, from two matrix
    products instead of the expansion."""
    cell = y_pred.astype(np.int64) + (0 if y_true is None else 2 * y_true.astype(np.int64))
    spread = np.zeros((len(cell), 4))
    spread[np.arange(len(cell)), cell] = base
    table = (spread.T @ post).T
    sq = ((spread * spread).T @ (post * post)).T
    seen = table.sum(axis=1) > 0
    return GroupCounts(
        attributes=(PROXY_ATTRIBUTE,),
        levels=(tuple(r for r, s in zip(RACES, seen) if s),),
        index=np.arange(int(seen.sum()), dtype=np.int64)[:, None],
        table=table[seen],
        has_label=y_true is not None,
        sq=sq[seen],
    )


def proxy_entries(data: ProbeInput | None, *, config: Any, min_group_size: int) -> list[ProbeEntry]:
    """The ``race_proxy`` entry (none without ``dataset.proxy``): probability-weighted
    counts, multiple-imputation intervals, threshold assignment beside. ``data`` is the
    probe's input, or in a chunked run ``CountContext.proxy`` (None without a proxy)."""
    from probes.demographic import entry_from_counts

    proxy = None if data is None else data.proxy
    if data is None or proxy is None:
        return []
    post = proxy.posteriors[list(RACES)].to_numpy(dtype=float)
    rows = len(post)
    y_pred = np.asarray(data.y_pred, dtype=bool)
    base = np.ones(rows) if data.weight is None else np.asarray(data.weight, dtype=float)
    y_true = None if data.y_true is None else np.asarray(data.y_true, dtype=bool)
    counts = posterior_counts(post, y_pred, y_true, base)
    entry = entry_from_counts(
        counts,
        config=config,
        min_group_size=min_group_size,
        unknown_label=data.unknown_label,
        reference=data.reference,
    )
    ref_name = str((entry.model_extra or {})["reference_group"])
    ref = RACES.index(ref_name)
    ratio, lo, hi, p_values = imputed_impact(
        post, y_pred, base, ref=ref, seed=data.seed, confidence=config.confidence
    )
    adjusted = holm(p_values)
    by_name = {race: i for i, race in enumerate(RACES)}
    groups = []
    for g in entry.groups:
        i = by_name[g["group"]]
        mi = finite_or_none(ratio[i])
        g = {**g, "impact_ratio_weighted": g["impact_ratio"], "impact_ratio_mi": mi}
        if not g.get("impact_ratio_excluded") and g["impact_ratio"] is not None:
            g["impact_ratio"] = mi  # the judged value: the one its interval is about
        if i != ref:
            g["impact_ratio_ci"] = [finite_or_none(lo[i]), finite_or_none(hi[i])]
            g["p_value"], g["p_value_adjusted"] = p_values[i], adjusted[i]
        groups.append(g)
    summary = dict(entry.summary)
    summary["proxy"] = {
        **proxy.coverage.model_dump(),
        "weighting": "posterior",
        "imputations": MI_DRAWS,
        "impact_ratio": "multiple imputation (Rubin's rules); impact_ratio_weighted beside",
        "threshold": threshold_summary(proxy.posteriors, y_pred, base, ref_name),
    }
    return [entry.model_copy(update={"groups": groups, "summary": summary})]
