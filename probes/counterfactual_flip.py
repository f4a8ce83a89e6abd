"""The model mode of counterfactual-tabular: the flip test, one prediction pass per value.

Every audited row is scored once with the attribute set to each audited value,
all other columns fixed; a row's observed prediction is its pass at its own
value. From the (rows x values) decisions and scores come the per-value rows
(``groups``: mean score, paired score gap, flip rate, tests against the
reference), the per-observed-group breakdown (``pairs``) and the rows that moved
most (``examples``). See :mod:`probes.counterfactual_tabular` for the metrics.

Not a probe: :mod:`probes.counterfactual_tabular` calls it, and it registers nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from probes.base import ProbeEntry, ProbeInput
from probes.counterfactual_common import entry_extra
from probes.inference import InferenceCancelled
from probes.stats import mcnemar_exact, mean_with_ci, rate_with_ci, wilcoxon_p
from probes.util import finite_or_none

if TYPE_CHECKING:
    from probes.counterfactual_tabular import CounterfactualTabularConfig


@dataclass(frozen=True)
class _Passes:
    """The decisions and scores of every row at every value, and each row's observed value.

    ``col`` is the index of a row's own value in ``values`` (-1: not audited, e.g.
    ``unknown``); ``fact`` and ``fact_sel`` are its observed score and decision.
    """

    sel: np.ndarray  # (rows, values) bool
    score: np.ndarray  # (rows, values) float; the decision (0/1) without scores
    has_score: bool
    orig: np.ndarray  # each row's own value, as a string
    known: np.ndarray  # the row's own value is audited
    fact: np.ndarray
    fact_sel: np.ndarray


def _predict(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(model, "predict_with_score"):
        sel, score = model.predict_with_score(frame)
    else:
        sel, score = model.predict(frame), model.score(frame)
    return np.asarray(sel, dtype=bool), None if score is None else np.asarray(score, dtype=float)


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return None if pd.isna(v) else str(v)


def _passes(data: ProbeInput, model: Any, attr: str, values: list[str]) -> _Passes:
    """One prediction pass per value (cancellable between passes, progress after each)."""
    frame = data.frame
    n = len(frame)
    cats = frame[attr].cat.categories
    has_score = True
    sel = np.zeros((n, len(values)), dtype=bool)
    score = np.zeros((n, len(values)))
    for j, v in enumerate(values):
        if data.should_cancel is not None and data.should_cancel():
            raise InferenceCancelled("counterfactual-tabular cancelled between passes")
        cf = frame.assign(**{attr: pd.Categorical(np.full(n, v, dtype=object), categories=cats)})
        s, sc = _predict(model, cf)
        sel[:, j] = s
        score[:, j] = sc if sc is not None else s.astype(float)
        has_score = has_score and sc is not None
        if data.progress is not None:
            data.progress((j + 1) / len(values))
    orig = frame[attr].astype(str).to_numpy()
    col = np.array([values.index(o) if o in values else -1 for o in orig], dtype=int)
    known = col >= 0
    rows_idx = np.arange(n)
    fact = np.where(known, score[rows_idx, np.maximum(col, 0)], np.nan)
    fact_sel = known & sel[rows_idx, np.maximum(col, 0)]
    return _Passes(sel, score, has_score, orig, known, fact, fact_sel)


def _group_rows(
    ps: _Passes, values: list[str], r: int, conf: float, min_group_size: int
) -> list[dict[str, Any]]:
    """Per value: everyone set to it, against everyone set to the reference (index ``r``)."""
    sel, score, has_score = ps.sel, ps.score, ps.has_score
    n = sel.shape[0]
    groups: list[dict[str, Any]] = []
    for j, v in enumerate(values):
        diff = score[:, j] - score[:, r]
        b = int((sel[:, j] & ~sel[:, r]).sum())
        c = int((~sel[:, j] & sel[:, r]).sum())
        mean, mean_ci = mean_with_ci(score[:, j], conf)
        gap, gap_ci = mean_with_ci(diff, conf)
        flip, flip_ci = rate_with_ci(b + c, n, conf)
        sel_rate, sel_ci = rate_with_ci(int(sel[:, j].sum()), n, conf)
        flip_p = mcnemar_exact(b, c)
        score_p = wilcoxon_p(diff) if has_score else flip_p
        groups.append(
            {
                "group": v,
                "n": n,
                "n_observed": int((ps.orig == v).sum()),
                "mean_score": finite_or_none(mean),
                "mean_score_ci": mean_ci,
                "score_gap": finite_or_none(gap),
                "score_gap_ci": gap_ci,
                "flip_rate": finite_or_none(flip),
                "flip_rate_ci": flip_ci,
                "flips_to_selected": b,
                "flips_to_not_selected": c,
                "selection_rate": finite_or_none(sel_rate),
                "selection_rate_ci": sel_ci,
                "p_value": score_p if has_score else flip_p,
                "flip_p_value": flip_p,
                "score_p_value": score_p if has_score else None,
                "insufficient_data": bool(n < min_group_size),
            }
        )
    return groups


def _pair_rows(ps: _Passes, values: list[str], conf: float) -> list[dict[str, Any]]:
    """Per observed group ``o`` and other value ``v``: its rows set from ``o`` to ``v``."""
    pairs: list[dict[str, Any]] = []
    for o in values:
        rows = ps.orig == o
        if not rows.any():
            continue
        k = int(rows.sum())
        for j, v in enumerate(values):
            if v == o:
                continue
            d = ps.score[rows, j] - ps.fact[rows]
            b = int((ps.sel[rows, j] & ~ps.fact_sel[rows]).sum())
            c = int((~ps.sel[rows, j] & ps.fact_sel[rows]).sum())
            change, change_ci = mean_with_ci(d, conf)
            flip, flip_ci = rate_with_ci(b + c, k, conf)
            pairs.append(
                {
                    "group": o,
                    "counterfactual": v,
                    "n": k,
                    "flip_rate": finite_or_none(flip),
                    "flip_rate_ci": flip_ci,
                    "mean_score_change": finite_or_none(change),
                    "mean_score_change_ci": change_ci,
                    "p_value": wilcoxon_p(d) if ps.has_score else mcnemar_exact(b, c),
                }
            )
    return pairs


def _examples(
    ps: _Passes, frame: pd.DataFrame, model: Any, values: list[str], k: int
) -> list[dict[str, Any]]:
    """Rows that moved most: largest |score(v) - observed score| over the other values."""
    n = len(frame)
    delta = np.where(ps.known[:, None], ps.score - ps.fact[:, None], 0.0)
    best = np.argmax(np.abs(delta), axis=1)
    moved = np.abs(delta[np.arange(n), best])
    order = [i for i in np.argsort(-moved, kind="stable")[:k] if moved[i] > 0]
    cols = list(getattr(model, "features", None) or frame.columns)
    return [
        {
            "group": str(ps.orig[i]),
            "counterfactual": values[best[i]],
            "input": {c: _json_value(frame[c].iloc[i]) for c in cols if c in frame.columns},
            "score": float(ps.fact[i]),
            "counterfactual_score": float(ps.score[i, best[i]]),
            "delta": float(delta[i, best[i]]),
            "selected": bool(ps.fact_sel[i]),
            "counterfactual_selected": bool(ps.sel[i, best[i]]),
        }
        for i in order
    ]


def flip_test(
    data: ProbeInput,
    model: Any,
    config: CounterfactualTabularConfig,
    values: list[str],
    reference: str | None,
) -> ProbeEntry:
    """Counterfactual mode: one prediction pass per value.

    A row's observed prediction is its pass at its own value, so rows whose value
    is not audited (``unknown``) count in ``groups`` but not in ``pairs``/``examples``.
    """
    assert reference is not None
    attr, conf = config.attribute, config.confidence
    ps = _passes(data, model, attr, values)
    groups = _group_rows(ps, values, values.index(reference), conf, data.min_group_size)
    pairs = _pair_rows(ps, values, conf)
    examples = _examples(ps, data.frame, model, values, config.examples)
    any_flip = ps.sel.any(axis=1) & ~ps.sel.all(axis=1)
    features = getattr(model, "features", None)
    summary: dict[str, Any] = {
        "mode": "counterfactual",
        "reference_rule": "config" if config.reference is not None else "most frequent level",
        "score_source": "score" if ps.has_score else "label",
        "flip_rate_any": float(any_flip.mean()),
        "max_abs_score_gap": max(abs(g["score_gap"] or 0.0) for g in groups),
        "max_flip_rate": max(g["flip_rate"] or 0.0 for g in groups),
        "p_value_test": "wilcoxon signed-rank" if ps.has_score else "mcnemar exact",
    }
    if features is not None:
        summary["attribute_in_features"] = attr in features
        if attr not in features:  # changing it cannot change a prediction: nothing tested
            summary["not_applicable"] = (
                f"the model does not take {attr!r} as a feature; the flip test does not apply"
            )
    return ProbeEntry(
        kind="counterfactual-tabular",
        attribute=attr,
        groups=groups,
        summary=summary,
        **entry_extra(reference, pairs, examples, values),
    )
