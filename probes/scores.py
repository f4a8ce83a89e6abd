"""Score-based group metrics: AUC, calibration error, LL144 scoring rate, distances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from probes.base import ProbeEntry
from probes.util import finite_or_none


def auc(score: np.ndarray, y: np.ndarray) -> float | None:
    """ROC AUC via the Mann-Whitney U statistic (ties count one half); None if one class."""
    pos = int(y.sum())
    neg = int(y.size - pos)
    if pos == 0 or neg == 0:
        return None
    ranks = _st.rankdata(score)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def calibration_error(score: np.ndarray, y: np.ndarray, bins: int = 10) -> float | None:
    """Expected calibration error with equal-width bins over [0, 1]."""
    if score.size == 0 or score.min() < 0 or score.max() > 1:
        return None
    idx = np.minimum((score * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    s = np.bincount(idx, weights=score, minlength=bins)
    k = np.bincount(idx, weights=y.astype(float), minlength=bins)
    nz = n > 0
    return float(np.abs(s[nz] - k[nz]).sum() / score.size)


KS_BLOCK_CELLS = 1 << 22  # ECDF values held at once (groups x points)


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


def score_metrics(
    entry: ProbeEntry, *, frame: pd.DataFrame, score: np.ndarray, y_true: np.ndarray | None
) -> ProbeEntry:
    """Add per-group AUC, calibration error and scoring rate, plus score distances."""
    attrs: list[str] = list(entry.model_extra.get("attributes", [entry.attribute]))  # type: ignore[union-attr]
    by_group = frame.groupby(attrs, observed=True, sort=False).indices
    median = float(np.median(score))
    above = score > median
    extra: dict[str, dict[str, Any]] = {}
    samples: list[np.ndarray] = []
    for key, rows in by_group.items():
        key_t = key if isinstance(key, tuple) else (key,)
        name = "&".join(str(k) for k in key_t)
        s = score[rows]
        samples.append(s)
        m: dict[str, Any] = {
            "mean_score": finite_or_none(s.mean()) if s.size else None,
            "scoring_rate": finite_or_none(above[rows].mean()) if s.size else None,
        }
        if y_true is not None:
            y = y_true[rows]
            m["auc"] = finite_or_none(auc(s, y))
            m["calibration_error"] = finite_or_none(calibration_error(s, y))
        extra[name] = m
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
    ks = max_ks_distance(samples)
    summary = {
        **entry.summary,
        "median_score": median,
        "score_ks_max": finite_or_none(ks) if ks is not None else None,
    }
    return entry.model_copy(update={"groups": groups, "summary": summary})
