"""Score-based group metrics: AUC, calibration error, LL144 scoring rate, distances.

With ``dataset.weight`` every one of them is the weighted one: a row counts with its
weight in the AUC's pairs (scikit-learn's ``roc_auc_score(sample_weight=w)``), in the
calibration bins, the mean score, the median the scoring rate is judged against
(weighted median), the scoring rate and the groups' ECDFs of the KS distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from probes.base import ProbeEntry
from probes.util import finite_or_none


def auc(score: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float | None:
    """ROC AUC via the Mann-Whitney U statistic (ties count one half); None if one class.

    Weighted: each (positive, negative) pair counts ``w_pos * w_neg``, as scikit-learn's
    ``roc_auc_score(y, score, sample_weight=w)`` (the trapezoids of the weighted ROC curve).
    """
    if weight is not None:
        return _weighted_auc(score, y, weight)
    pos = int(y.sum())
    neg = int(y.size - pos)
    if pos == 0 or neg == 0:
        return None
    ranks = _st.rankdata(score)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _weighted_auc(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> float | None:
    """Weighted AUC: per distinct score, positive weight times the negative weight below
    it plus half the negative weight tied with it, over ``W_pos * W_neg``."""
    y = np.asarray(y, dtype=bool)
    wp_total, wn_total = float(w[y].sum()), float(w[~y].sum())
    if wp_total <= 0 or wn_total <= 0:
        return None
    values, inverse = np.unique(score, return_inverse=True)
    wp = np.bincount(inverse, weights=np.where(y, w, 0.0), minlength=values.size)
    wn = np.bincount(inverse, weights=np.where(y, 0.0, w), minlength=values.size)
    below = np.cumsum(wn) - wn
    return float((wp * (below + 0.5 * wn)).sum() / (wp_total * wn_total))


def calibration_error(
    score: np.ndarray, y: np.ndarray, bins: int = 10, weight: np.ndarray | None = None
) -> float | None:
    """Expected calibration error with equal-width bins over [0, 1].

    ``sum_b |sum_{i in b} w_i (s_i - y_i)| / sum_i w_i`` (``w = 1`` unweighted): each
    bin's gap between mean score and observed rate, weighted by the bin's share.
    """
    if score.size == 0 or score.min() < 0 or score.max() > 1:
        return None
    w = np.ones(score.size) if weight is None else np.asarray(weight, dtype=float)
    total = float(w.sum())
    if total <= 0:
        return None
    idx = np.minimum((score * bins).astype(int), bins - 1)
    s = np.bincount(idx, weights=w * score, minlength=bins)
    k = np.bincount(idx, weights=w * y.astype(float), minlength=bins)
    return float(np.abs(s - k).sum() / total)


HALF_RTOL = 1e-9  # a cumulative weight this close to one half is one half (float sums)


def weighted_median(values: np.ndarray, weight: np.ndarray) -> float:
    """The interpolated weighted median: ``np.median`` of the values repeated by their
    weights (rows of zero weight ignored).

    The smallest value at which the weighted ECDF reaches one half; where it reaches
    exactly one half (up to rounding), the midpoint of that value and the next one, as
    ``np.median`` and pandas take the mean of the two middle values of an even count.
    So weights of 1 give exactly ``np.median``: LL144's "median score" is one number,
    weighted or not.
    """
    keep = np.asarray(weight, dtype=float) > 0
    v, w = values[keep], np.asarray(weight, dtype=float)[keep]
    if v.size == 0:
        return float(np.median(values)) if values.size else float("nan")
    order = np.argsort(v, kind="stable")
    v, c = v[order], np.cumsum(w[order])
    half, tol = c[-1] / 2, HALF_RTOL * c[-1]
    i = min(int(np.searchsorted(c, half - tol, side="left")), v.size - 1)
    if i + 1 < v.size and abs(c[i] - half) <= tol:  # exactly one half
        return float((v[i] + v[i + 1]) / 2)
    return float(v[i])


def median_score(score: np.ndarray, weight: np.ndarray | None = None) -> float:
    """The median LL144's scoring rate is judged against (:func:`weighted_median`;
    unweighted, ``np.median``, which is the same number as weights of 1)."""
    return float(np.median(score)) if weight is None else weighted_median(score, weight)


KS_BLOCK_CELLS = 1 << 22  # ECDF values held at once (groups x points)


def weighted_ks_distance(samples: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The largest KS distance between the weighted ECDFs of every pair of groups.

    ``F_g(x) = sum(w_i : s_i <= x) / sum(w_i)`` over the group's rows; the statistic is
    ``sup_x (max_g F_g(x) - min_g F_g(x))`` over the pooled scores (each pair's weighted
    two-sample KS statistic, maximised; groups of zero total weight are left out).
    """
    kept = []
    for s, w in samples:
        if s.size and float(w.sum()) > 0:
            order = np.argsort(s, kind="stable")
            kept.append((s[order], np.cumsum(w[order]) / float(w.sum())))
    if len(kept) < 2:
        return None
    points = np.unique(np.concatenate([s for s, _ in kept]))
    hi = np.full(points.size, -np.inf)
    lo = np.full(points.size, np.inf)
    for s, cdf in kept:
        at = np.searchsorted(s, points, side="right")
        f = np.where(at > 0, cdf[np.maximum(at - 1, 0)], 0.0)
        hi, lo = np.maximum(hi, f), np.minimum(lo, f)
    return float(np.max(hi - lo))


def max_ks_distance(samples: list[np.ndarray]) -> float | None:
    """The largest two-sample Kolmogorov-Smirnov statistic over every pair of samples.

    Equal to ``max(ks_2samp(a, b).statistic)`` over all pairs, without the pairs:
    ``max_ij sup_x |F_i(x) - F_j(x)| = sup_x (max_i F_i(x) - min_i F_i(x))`` over the
    pooled points (each ECDF evaluated as scipy does, ``searchsorted(side="right") / n``),
    so the cost is O(groups x distinct scores), not O(groups^2), in blocks of groups;
    scipy is then asked once, for the farthest pair.
    """
    kept = [np.sort(s) for s in samples if s.size]
    if len(kept) < 2:
        return None
    points = np.unique(np.concatenate(kept))
    hi = np.full(points.size, -np.inf)
    lo = np.full(points.size, np.inf)
    step = max(1, KS_BLOCK_CELLS // max(points.size, 1))
    for start in range(0, len(kept), step):
        block = np.stack(
            [np.searchsorted(s, points, side="right") / s.size for s in kept[start : start + step]]
        )
        hi = np.maximum(hi, block.max(axis=0))
        lo = np.minimum(lo, block.min(axis=0))
    x = points[int(np.argmax(hi - lo))]
    at_x = np.array([np.searchsorted(s, x, side="right") / s.size for s in kept])
    # the statistic of the farthest pair as scipy states it (exact mode rounds it to h/lcm)
    pair = kept[int(np.argmax(at_x))], kept[int(np.argmin(at_x))]
    return float(_st.ks_2samp(*pair).statistic)


def _group_score_metrics(
    s: np.ndarray, above: np.ndarray, y: np.ndarray | None, w: np.ndarray | None
) -> dict[str, Any]:
    """One group's mean score, scoring rate and (with labels) AUC and calibration error."""
    if w is None:
        m: dict[str, Any] = {
            "mean_score": finite_or_none(s.mean()) if s.size else None,
            "scoring_rate": finite_or_none(above.mean()) if s.size else None,
        }
    else:
        total = float(w.sum())
        m = {
            "mean_score": finite_or_none(float(w @ s) / total) if total > 0 else None,
            "scoring_rate": finite_or_none(float(w @ above) / total) if total > 0 else None,
        }
    if y is not None:
        m["auc"] = finite_or_none(auc(s, y, w))
        m["calibration_error"] = finite_or_none(calibration_error(s, y, weight=w))
    return m


def score_metrics(
    entry: ProbeEntry,
    *,
    frame: pd.DataFrame,
    score: np.ndarray,
    y_true: np.ndarray | None,
    weight: np.ndarray | None = None,
) -> ProbeEntry:
    """Add per-group AUC, calibration error and scoring rate, plus score distances
    (weighted by ``weight``, ``dataset.weight``, when given)."""
    attrs: list[str] = list(entry.model_extra.get("attributes", [entry.attribute]))  # type: ignore[union-attr]
    by_group = frame.groupby(attrs, observed=True, sort=False).indices
    w_all = None if weight is None else np.asarray(weight, dtype=float)
    median = median_score(score, w_all)
    above = (score > median).astype(float)
    extra: dict[str, dict[str, Any]] = {}
    samples: list[np.ndarray] = []
    weighted: list[tuple[np.ndarray, np.ndarray]] = []
    for key, rows in by_group.items():
        key_t = key if isinstance(key, tuple) else (key,)
        name = "&".join(str(k) for k in key_t)
        s = score[rows]
        w = None if w_all is None else w_all[rows]
        samples.append(s)
        if w is not None:
            weighted.append((s, w))
        y = None if y_true is None else y_true[rows]
        extra[name] = _group_score_metrics(s, above[rows], y, w)
    # reference: the highest scoring rate among groups large enough for a decision,
    # as for the selection impact ratio
    # (groups left out of impact ratios, e.g. the unknown category, are left out here too)
    kept = [g for g in entry.groups if not g.get("impact_ratio_excluded")]
    eligible = [g["group"] for g in kept if not g.get("insufficient_data")]
    pool = eligible or [g["group"] for g in kept] or [g["group"] for g in entry.groups]
    best = max(((extra.get(name) or {}).get("scoring_rate") or 0.0) for name in pool)
    groups = []
    for g in entry.groups:
        m = dict(extra.get(g["group"], {}))
        sr = m.get("scoring_rate")
        m["scoring_impact_ratio"] = (
            finite_or_none(sr / best)
            if sr is not None and best > 0 and not g.get("impact_ratio_excluded")
            else None
        )
        groups.append({**g, **m})
    ks = max_ks_distance(samples) if w_all is None else weighted_ks_distance(weighted)
    summary = {
        **entry.summary,
        "median_score": median,
        "score_ks_max": finite_or_none(ks) if ks is not None else None,
    }
    return entry.model_copy(update={"groups": groups, "summary": summary})
