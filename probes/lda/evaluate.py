"""Evaluate one candidate's decisions on the audit's holdout rows, with bootstrap CIs.

Every candidate is judged on the same holdout rows and the same bootstrap
replicates (Poisson(1) row weights drawn once from the seed), so the intervals
of two candidates, and of their difference, are paired: a gain that is larger
than the noise of the holdout shows as a difference whose interval excludes 0.

- ``performance``: the business measure, ``auc`` (area under the ROC curve of
  the candidate's score, ties counted half) or ``accuracy`` (of its decisions).
- ``selection_rates``: share selected per group (groups with fewer than
  ``min_group_size`` rows, and ``unknown``, are reported but not compared).
- ``min_impact_ratio``: the lowest selection rate divided by the highest (or by
  the reference group's rate when a control group is set).

Row weights (``dataset.weight``) multiply the bootstrap weights when given.
Groups are hard (one level per row) or soft (``membership``: each row's
probability of each group, e.g. a race proxy's posteriors): a group's selection
rate is then the probability-weighted one, ``sum(w p sel) / sum(w p)``, as the
demographic probe's ``race_proxy`` entry counts it; its size is the expected
count ``sum(p)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from probes.util import finite_or_none

Metric = Literal["auc", "accuracy"]
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Holdout:
    """The holdout rows, their groups and the shared bootstrap weights."""

    y: np.ndarray  # bool: favorable ground truth
    codes: np.ndarray  # int group code per row (soft groups: the most likely)
    levels: tuple[str, ...]
    eligible: np.ndarray  # bool per level: compared in the impact ratio
    reference: int | None  # level index of the control group, or None (highest rate)
    weights: np.ndarray  # (n,) row weights
    boot: np.ndarray  # (B, n) bootstrap weights (row weights included)
    confidence: float
    onehot: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    sizes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


def make_holdout(
    *,
    y: np.ndarray,
    groups: Any = None,
    n_boot: int,
    seed: int,
    confidence: float,
    min_group_size: int,
    weights: np.ndarray | None = None,
    reference: str | None = None,
    unknown_label: str = UNKNOWN,
    membership: tuple[tuple[str, ...], np.ndarray] | None = None,
) -> Holdout:
    """Factorize the groups once and draw the bootstrap weights once (seeded).

    ``groups`` gives one level per row; ``membership`` (levels, rows x levels
    probabilities) gives soft groups instead."""
    if membership is not None:
        levels_t, onehot = membership[0], np.asarray(membership[1], dtype=float)
        codes = onehot.argmax(axis=1) if len(onehot) else np.zeros(0, dtype=np.int64)
    else:
        values = np.asarray([str(g) for g in groups], dtype=object)
        levels, codes = np.unique(values, return_inverse=True)
        levels_t = tuple(str(v) for v in levels)
        onehot = np.zeros((len(values), len(levels_t)))
        onehot[np.arange(len(values)), codes] = 1.0
    n = len(onehot)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    sizes = onehot.sum(axis=0)
    eligible = np.array(
        [lv != unknown_label and sizes[i] >= min_group_size for i, lv in enumerate(levels_t)],
        dtype=bool,
    )
    ref = levels_t.index(reference) if reference is not None and reference in levels_t else None
    rng = np.random.default_rng(seed)
    boot = rng.poisson(1.0, size=(n_boot, n)).astype(float) * w[None, :]
    return Holdout(
        y=np.asarray(y, dtype=bool),
        codes=codes,
        levels=levels_t,
        eligible=eligible,
        reference=ref,
        weights=w,
        boot=boot,
        confidence=confidence,
        onehot=onehot,
        sizes=sizes,
    )


def _auc(w: np.ndarray, score: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weighted AUC for each row of weights ``w`` (2-D: replicates x rows); ties count half."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wo = w[:, order]
    yo = y[order]
    pos = np.add.reduceat(wo * yo, starts, axis=1)
    neg = np.add.reduceat(wo * ~yo, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _performance(w: np.ndarray, h: Holdout, score: np.ndarray, sel: np.ndarray, metric: Metric):
    if metric == "auc":
        return _auc(w, score, h.y)
    correct = (sel == h.y).astype(float)
    tot = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (w * correct).sum(axis=1) / np.where(tot > 0, tot, 1.0), np.nan)


def _rates(w: np.ndarray, h: Holdout, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selection rate per group and the lowest impact ratio, for each row of weights."""
    total = w @ h.onehot
    chosen = (w * sel) @ h.onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(total > 0, chosen / np.where(total > 0, total, 1.0), np.nan)
    comp = np.where(h.eligible[None, :], rate, np.nan)
    if int(h.eligible.sum()) < 2:
        return rate, np.full(len(w), np.nan)
    if h.reference is not None:
        denom = rate[:, h.reference]
    else:
        denom = np.nanmax(comp, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(denom > 0, denom, 1.0)[:, None]
        ratio = np.where((denom > 0)[:, None], comp / safe, np.nan)
        low = np.nanmin(np.where(np.isnan(ratio), np.inf, ratio), axis=1)
    return rate, np.where(np.isfinite(low), low, np.nan)


def _ci(samples: np.ndarray, confidence: float) -> list[float | None]:
    ok = samples[np.isfinite(samples)]
    if ok.size == 0:
        return [None, None]
    a = (1 - confidence) / 2
    lo, hi = np.quantile(ok, [a, 1 - a])
    return [finite_or_none(float(lo)), finite_or_none(float(hi))]


@dataclass(frozen=True)
class Evaluation:
    """One candidate on the holdout: what results.json reports, and its bootstrap draws."""

    record: dict[str, Any]
    perf_boot: np.ndarray
    ir_boot: np.ndarray


def evaluate(h: Holdout, *, score: np.ndarray, selected: np.ndarray, metric: Metric) -> Evaluation:
    """Performance and lowest impact ratio (point and CI), selection rates by group."""
    score = np.asarray(score, dtype=float)
    sel = np.asarray(selected, dtype=bool)
    point_w = h.weights[None, :]
    perf = _performance(point_w, h, score, sel, metric)[0]
    perf_boot = _performance(h.boot, h, score, sel, metric)
    rate, low = _rates(point_w, h, sel)
    rate_boot, low_boot = _rates(h.boot, h, sel)
    accuracy = _performance(point_w, h, score, sel, "accuracy")[0]
    groups = {
        lv: {
            "selection_rate": finite_or_none(float(rate[0, i])),
            "selection_rate_ci": _ci(rate_boot[:, i], h.confidence),
            "compared": bool(h.eligible[i]),
        }
        for i, lv in enumerate(h.levels)
    }
    record = {
        "performance": finite_or_none(float(perf)),
        "performance_ci": _ci(perf_boot, h.confidence),
        "accuracy": finite_or_none(float(accuracy)),
        "min_impact_ratio": finite_or_none(float(low[0])),
        "min_impact_ratio_ci": _ci(low_boot, h.confidence),
        "selection_rate": finite_or_none(float(np.average(sel, weights=h.weights)))
        if len(sel)
        else None,
        "groups": groups,
    }
    return Evaluation(record=record, perf_boot=perf_boot, ir_boot=low_boot)


def paired_gain_ci(a: Evaluation, b: Evaluation, confidence: float) -> list[float | None]:
    """CI of ``b``'s lowest impact ratio minus ``a``'s over the shared replicates."""
    return _ci(b.ir_boot - a.ir_boot, confidence)
