"""SageMaker Clarify bias metrics, computed from group counts.

Every metric here is a function of a few counts, so it is computed from the
confusion-cell counts of :mod:`probes.counts` (``[tn, fp, fn, tp]``) or, for the
pre-training (label-only) metrics, from label counts ``[negatives, positives]``.
Counts add, so the metrics of a sharded dataset are the metrics of the summed
counts. Definitions and signs follow the Clarify documentation and the
``smclarify`` reference implementation: the facet ``d`` is the group examined
and ``a`` is everyone else (the rest).

Where Clarify's code returns ``0``/``inf`` for a division by zero, these
functions return ``None`` (``NaN`` in the vectorised ``*_arrays`` variants), so
results never hold ``inf`` and an undefined metric is visibly undefined.

Example
-------
>>> m = post_training_metrics(facet=np.array([40, 10, 20, 30]), rest=np.array([30, 20, 10, 40]))
>>> round(m["DPPL"], 3), round(m["DI"], 3)
(0.2, 0.667)
"""

from __future__ import annotations

import numpy as np

from probes.base import ProbeEntry, ProbeInput
from probes.counts import FN, FP, TN, TP, GroupCounts, count_groups

POST_TRAINING = ("DPPL", "DI", "DCA", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE")
PRE_TRAINING = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS")


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN (never inf) where den == 0."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den == 0, np.nan, out)


def to_optional(x: float | np.floating | np.ndarray) -> float | None:
    """A plain float, or None where the value is NaN or infinite (JSON-safe)."""
    v = float(x)
    return v if np.isfinite(v) else None


def _optional_dict(arrays: dict[str, np.ndarray]) -> dict[str, float | None]:
    return {k: to_optional(v) for k, v in arrays.items()}


def _cells(x: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(x, dtype=float)
    if c.shape[-1:] != (4,):
        raise ValueError(f"{name} must hold confusion counts [tn, fp, fn, tp] on its last axis")
    return c


# --------------------------------------------------------------------------- post-training


def post_training_arrays(facet: np.ndarray, rest: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised post-training metrics for ``(..., 4)`` count arrays; NaN where undefined.

    ``facet`` and ``rest`` broadcast against each other, so one call covers every
    group of an attribute (see :func:`one_vs_rest_arrays`).
    """
    d = _cells(facet, "facet")
    a = _cells(rest, "rest")

    def parts(c: np.ndarray) -> dict[str, np.ndarray]:
        tn, fp, fn, tp = c[..., TN], c[..., FP], c[..., FN], c[..., TP]
        n = tn + fp + fn + tp
        return {
            "q": _div(fp + tp, n),  # predicted-positive proportion
            "c": _div(fn + tp, fp + tp),  # observed / predicted acceptances
            "r": _div(tn + fp, tn + fn),  # observed / predicted rejections
            "tpr": _div(tp, tp + fn),
            "tnr": _div(tn, tn + fp),
            "ppv": _div(tp, tp + fp),
            "npv": _div(tn, tn + fn),
            "acc": _div(tn + tp, n),
            "tau": _div(fn, fp),
        }

    pd_, pa = parts(d), parts(a)
    return {
        "DPPL": pa["q"] - pd_["q"],
        "DI": _div(pd_["q"], pa["q"]),
        "DCA": pa["c"] - pd_["c"],
        "DCR": pd_["r"] - pa["r"],
        "RD": pa["tpr"] - pd_["tpr"],
        "SD": pd_["tnr"] - pa["tnr"],
        "DAR": pa["ppv"] - pd_["ppv"],
        "DRR": pd_["npv"] - pa["npv"],
        "AD": pa["acc"] - pd_["acc"],
        "TE": pd_["tau"] - pa["tau"],
    }


def post_training_metrics(*, facet: np.ndarray, rest: np.ndarray) -> dict[str, float | None]:
    """Clarify's post-training metrics of one facet against the rest.

    Parameters
    ----------
    facet, rest
        Length-4 count vectors ``[tn, fp, fn, tp]`` (favorable label = positive)
        of the facet ``d`` and of everyone else ``a``.

    Returns
    -------
    dict
        ``DPPL, DI, DCA, DCR, RD, SD, DAR, DRR, AD, TE`` (docs/metrics.md); a
        value is None where one of its denominators is 0.
    """
    f, r = _cells(facet, "facet"), _cells(rest, "rest")
    if f.shape != (4,) or r.shape != (4,):
        raise ValueError("facet and rest must each be a length-4 vector [tn, fp, fn, tp]")
    return _optional_dict(post_training_arrays(f, r))


def one_vs_rest_arrays(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Post-training metrics of every group (rows of ``(groups, 4)``) against all the others."""
    c = _cells(cells, "cells")
    return post_training_arrays(c, c.sum(axis=0, keepdims=True) - c)


def one_vs_rest(cells: np.ndarray) -> list[dict[str, float | None]]:
    """Like :func:`one_vs_rest_arrays`, as one JSON-safe dict per group."""
    arrays = one_vs_rest_arrays(cells)
    return [{k: to_optional(v[i]) for k, v in arrays.items()} for i in range(len(cells))]


# --------------------------------------------------------------------------- CDD


def conditional_demographic_disparity_arrays(
    *,
    facet_pos: np.ndarray,
    facet_neg: np.ndarray,
    rest_pos: np.ndarray,
    rest_neg: np.ndarray,
) -> np.ndarray:
    """CDD from per-stratum counts, strata on the last axis (vectorised over leading axes).

    In stratum ``i`` the demographic disparity is
    ``DD_i = facet_neg_i / neg_i - facet_pos_i / pos_i`` (the facet's share of
    the rejected minus its share of the accepted; a share with an empty
    denominator counts as 0, as in smclarify), and
    ``CDD = sum_i n_i * DD_i / n``. NaN when the data has no positives, no
    negatives, or no facet members.
    """
    fp_, fn_ = np.asarray(facet_pos, dtype=float), np.asarray(facet_neg, dtype=float)
    rp, rn = np.asarray(rest_pos, dtype=float), np.asarray(rest_neg, dtype=float)
    pos, neg = fp_ + rp, fn_ + rn
    accepted_share = np.nan_to_num(_div(fp_, pos))
    rejected_share = np.nan_to_num(_div(fn_, neg))
    n_i = pos + neg
    cdd = _div((n_i * (rejected_share - accepted_share)).sum(-1), n_i.sum(-1))
    undefined = (pos.sum(-1) == 0) | (neg.sum(-1) == 0) | ((fp_ + fn_).sum(-1) == 0)
    return np.where(undefined, np.nan, cdd)


def cddpl(*, facet_by_stratum: np.ndarray, rest_by_stratum: np.ndarray) -> float | None:
    """Conditional Demographic Disparity in Predicted Labels (Clarify CDDPL).

    ``facet_by_stratum`` and ``rest_by_stratum`` have shape ``(strata, 4)``
    (``[tn, fp, fn, tp]`` per stratum); accepted = predicted favorable.
    """
    f = _cells(facet_by_stratum, "facet_by_stratum")
    r = _cells(rest_by_stratum, "rest_by_stratum")
    if f.ndim != 2 or f.shape != r.shape:
        raise ValueError("facet_by_stratum and rest_by_stratum must both have shape (strata, 4)")
    value = conditional_demographic_disparity_arrays(
        facet_pos=f[:, FP] + f[:, TP],
        facet_neg=f[:, TN] + f[:, FN],
        rest_pos=r[:, FP] + r[:, TP],
        rest_neg=r[:, TN] + r[:, FN],
    )
    return to_optional(value)


# --------------------------------------------------------------------------- pre-training


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) over the last axis; 0 log 0 = 0, +inf where q = 0 < p."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return terms.sum(-1)


def pre_training_arrays(facet: np.ndarray, rest: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised pre-training metrics from label counts ``(..., 2)`` = ``[neg, pos]``.

    ``CI`` is Clarify's class imbalance ``(n_a - n_d) / (n_a + n_d)`` (not a
    confidence interval). KL, JS, LP (p=2), TVD and KS compare the label
    distributions ``P_a`` and ``P_d``; KL is NaN where it is infinite
    (``P_d(y) = 0 < P_a(y)``). NaN wherever either side is empty.
    """
    d = np.asarray(facet, dtype=float)
    a = np.asarray(rest, dtype=float)
    if d.shape[-1:] != (2,) or a.shape[-1:] != (2,):
        raise ValueError("facet and rest must hold label counts [negatives, positives]")
    nd, na = d.sum(-1), a.sum(-1)
    p_d = _div(d, nd[..., None])
    p_a = _div(a, na[..., None])
    empty = (nd == 0) | (na == 0)
    diff = p_a - p_d
    mid = (p_a + p_d) / 2
    kl = _kl(p_a, p_d)
    out = {
        "CI": _div(na - nd, na + nd),
        "DPL": p_a[..., 1] - p_d[..., 1],
        "KL": np.where(np.isfinite(kl), kl, np.nan),
        "JS": 0.5 * (_kl(p_a, mid) + _kl(p_d, mid)),
        "LP": np.sqrt((diff**2).sum(-1)),
        "TVD": 0.5 * np.abs(diff).sum(-1),
        "KS": np.abs(diff).max(-1),
    }
    return {k: np.where(empty, np.nan, v) for k, v in out.items()}


def pre_training_metrics(*, facet: np.ndarray, rest: np.ndarray) -> dict[str, float | None]:
    """Clarify's pre-training metrics ``CI, DPL, KL, JS, LP, TVD, KS`` of one facet.

    ``facet`` and ``rest`` are label counts ``[negatives, positives]`` (positive
    = favorable label). None where undefined (an empty side, or infinite KL).
    """
    f, r = np.asarray(facet), np.asarray(rest)
    if f.shape != (2,) or r.shape != (2,):
        raise ValueError("facet and rest must each be a length-2 vector [negatives, positives]")
    return _optional_dict(pre_training_arrays(f, r))


# --------------------------------------------------------------------------- entropy indices

# benefit b = y_pred - y_true + 1 of each confusion cell [tn, fp, fn, tp]
_BENEFIT = np.array([1.0, 2.0, 0.0, 1.0])


def _entropy_index(weights: np.ndarray, benefit: np.ndarray, alpha: float) -> float | None:
    """GE(alpha) of a population where ``weights[i]`` people have benefit ``benefit[i]``."""
    w = np.asarray(weights, dtype=float).ravel()
    b = np.asarray(benefit, dtype=float).ravel()
    n = w.sum()
    if n <= 0:
        return None
    mu = float((w * b).sum() / n)
    if mu <= 0:
        return None  # every prediction a false negative: the index is undefined
    x = b / mu
    live = w > 0
    w, x = w[live], x[live]
    with np.errstate(divide="ignore", invalid="ignore"):
        if alpha == 1:
            value = (w * np.where(x > 0, x * np.log(x), 0.0)).sum() / n
        elif alpha == 0:
            value = -(w * np.log(x)).sum() / n
        else:
            value = (w * (x**alpha - 1)).sum() / (n * alpha * (alpha - 1))
    return to_optional(value)


def generalized_entropy_index(cells: np.ndarray, alpha: float = 2) -> float | None:
    """Generalized entropy index of the benefits ``b = y_pred - y_true + 1`` (Clarify GE).

    Speicher et al. (2018); aif360's ``ClassificationMetric.generalized_entropy_index``.
    From counts: FN -> b = 0, TN and TP -> 1, FP -> 2. ``cells`` is ``(..., 4)``;
    leading (group) axes are summed, as the index is over all individuals.
    None where undefined (no rows, all false negatives, or infinite for
    ``alpha <= 0`` with false negatives present). For ``alpha = 0`` this is the
    paper's ``-mean(ln(b / mu))``; aif360's code also divides by ``mu`` there.
    """
    c = _cells(cells, "cells").reshape(-1, 4).sum(axis=0)
    return _entropy_index(c, _BENEFIT, alpha)


def between_group_generalized_entropy_index(cells: np.ndarray, alpha: float = 2) -> float | None:
    """Between-group GE: every individual gets their group's mean benefit.

    ``cells`` is ``(groups, 4)`` over disjoint groups; as aif360's
    ``between_group_generalized_entropy_index`` / ``between_all_groups_...``.
    """
    c = _cells(cells, "cells").reshape(-1, 4)
    n = c.sum(axis=1)
    group_mean = _div(c @ _BENEFIT, n)
    keep = n > 0
    return _entropy_index(n[keep], group_mean[keep], alpha)


def cddpl_by_group(counts: GroupCounts) -> dict[str, float | None]:
    """CDDPL of every group from counts over the audited attributes then the strata column
    (the last attribute); weighted counts give the weighted CDDPL. Counts add, so the
    value is the same from one pass, chunks or shards."""
    by_attrs, cube = counts.by_last()  # (groups, strata, 4)
    keys = ["&".join(k) for k in by_attrs.flat()[0]]
    total = cube.sum(axis=0)
    return {
        key: cddpl(facet_by_stratum=facet, rest_by_stratum=total - facet)
        for key, facet in zip(keys, cube)
    }


def add_cddpl(entry: ProbeEntry, values: dict[str, float | None]) -> ProbeEntry:
    """The entry with each group's ``cddpl`` (None for a group without a value)."""
    groups = [{**g, "cddpl": values.get(g["group"])} for g in entry.groups]
    return entry.model_copy(update={"groups": groups})


def with_cddpl(entry: ProbeEntry, data: ProbeInput) -> ProbeEntry:
    """Add Clarify's CDDPL (predicted labels, conditioned on ``data.strata``) per group.

    With ``dataset.weight`` every count is a sum of weights (each stratum's ``n_i``,
    accepted and rejected shares), as for the other count-derived metrics."""
    attrs = list(entry.model_extra.get("attributes", [entry.attribute]))  # type: ignore[union-attr]
    if data.strata is None or data.strata in attrs or data.y_pred is None:
        return entry
    frame = data.frame[[*attrs, data.strata]].copy()
    frame[data.strata] = frame[data.strata].astype("string").fillna("unknown").astype("category")
    counts = count_groups(frame, [*attrs, data.strata], y_pred=data.y_pred, weight=data.weight)
    return add_cddpl(entry, cddpl_by_group(counts))
