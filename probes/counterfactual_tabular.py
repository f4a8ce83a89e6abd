"""Flip test on a tabular model: change only the protected attribute, re-predict.

With a model (``model.kind: sklearn``/``onnx``) every audited row is scored once
as observed and once with the attribute set to each audited value, all other
columns fixed (Kusner et al. 2017, "Counterfactual Fairness"; the "flip test"
of Black, Yeom & Fredrikson 2020). For each value ``g`` the entry reports, over
the same rows:

- ``mean_score``: mean score with everyone set to ``g`` (t interval);
- ``score_gap``: ``mean_score(g) - mean_score(reference)``, paired per row
  (t interval on the per-row differences);
- ``flip_rate``: share of rows whose selected/not-selected decision differs
  between ``g`` and the reference (Wilson interval);
- ``p_value``: paired test of ``g`` against the reference: Wilcoxon signed-rank
  on the per-row score differences when the model gives scores, else McNemar's
  exact test on the discordant decisions (``flip_p_value`` and
  ``score_p_value`` are both reported).

The reference group defaults to the **most frequent observed level** (ties: the
first in sorted order); ``unknown`` is never a default value or reference.
A model that does not take the attribute as a feature (``features``) cannot be
flipped by it: the entry's ``summary.not_applicable`` says so and its findings
are ``not_applicable``, not ``pass``. Each finding carries its own p-value:
``score_gap`` the score test's, ``flip_rate`` McNemar's.

``pairs`` breaks the change down per observed group (rows whose real value is
``o``, set to ``v``): n, flip_rate, mean score change, p-value. Without scores
(a model lacking ``predict_proba``) the decision itself (0/1) is the score.

Without a model (``model.kind: predictions``) no row can be re-scored, so the
probe computes SageMaker Clarify's flip test FT instead, each group against its
k nearest neighbours in all other groups (:mod:`probes.counterfactual_knn`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from probes import counterfactual_tabular_models as typed
from probes.base import (
    Check,
    ModelAdapter,
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeError,
    ProbeInput,
    ProbeResult,
    register_probe,
)
from probes.counterfactual_common import UNKNOWN, entry_extra
from probes.counterfactual_knn import knn_features, knn_flip_test
from probes.inference import InferenceCancelled
from probes.stats import mcnemar_exact, mean_with_ci, rate_with_ci, wilcoxon_p
from probes.util import finite_or_none

__all__ = [
    "UNKNOWN",
    "CounterfactualTabularConfig",
    "CounterfactualTabularProbe",
    "knn_features",
    "mcnemar_exact",
    "wilcoxon_p",
]


class CounterfactualTabularConfig(ProbeConfig):
    """Configuration of the tabular flip test (spec ``probes[i]``)."""

    kind: Literal["counterfactual-tabular"] = "counterfactual-tabular"
    attribute: str = Field(description="protected column whose value is changed")
    values: list[str] | None = Field(
        default=None, description="values to set (default: every observed level but unknown)"
    )
    reference: str | None = Field(
        default=None, description="reference value (default: the most frequent observed level)"
    )
    max_rows: int | None = Field(default=None, ge=1, description="audit a seeded random sample")
    examples: int = Field(default=10, ge=0, le=1000, description="rows that moved most to report")
    seed: int | None = Field(default=None, description="sampling seed (default: the audit seed)")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    neighbors: int = Field(default=5, ge=1, description="k of the kNN flip test (no model)")
    features: list[str] | None = Field(
        default=None, description="columns for the kNN flip test (default: all non-protected)"
    )


def _levels(col: pd.Series) -> tuple[pd.Series, list[str]]:
    """The column as string category and its observed levels, most frequent first."""
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("string").fillna(UNKNOWN).astype("category")
    counts = col.value_counts(sort=False)
    observed = [str(k) for k, v in counts.items() if v > 0]
    observed.sort(key=lambda lv: (-int(counts[lv]), lv))
    return col, observed


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


# needs=(): a model is optional. With one, this is the flip test; without one
# (model.kind: predictions) it falls back to the kNN flip test on dataset.prediction.
@register_probe(
    "counterfactual-tabular", kind="counterfactual", needs=(), tags=("tabular", "counterfactual")
)
class CounterfactualTabularProbe(Probe):
    """Flip test: set the protected attribute to each value, all else fixed, and re-predict.

    References: Kusner et al. (2017); Black, Yeom & Fredrikson (2020), FlipTest;
    Amazon SageMaker Clarify post-training metric FT (no-model mode).
    """

    config_model = CounterfactualTabularConfig
    title = "Counterfactual attribute flip"
    layout = "counterfactual"
    group_model = typed.FlipGroup
    summary_model = typed.FlipSummary
    entry_fields = typed.FlipEntryFields
    example = typed.EXAMPLE
    checks = (
        Check(
            "score_gap",
            "max_score_gap",
            0.02,
            "max",
            "largest |mean score change| tolerated",
            absolute=True,
            ci="score_gap_ci",
            p_value="score_p_value",
            min_n=1,
            skip_missing=True,
            skip_reference=True,
            ge=0,
        ),
        Check(
            "flip_rate",
            "max_flip_rate",
            0.01,
            "max",
            "largest share of flipped decisions tolerated",
            ci="flip_rate_ci",
            p_value="flip_p_value",
            min_n=1,
            skip_missing=True,
            skip_reference=True,
            ge=0,
            le=1,
        ),
    )

    @classmethod
    def uses_dataset(cls, raw: Mapping[str, Any]) -> bool:
        return True

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: CounterfactualTabularConfig
    ) -> ProbeResult:
        attr = config.attribute
        if attr not in data.frame.columns:
            raise ProbeError(
                f"probes[].attribute: column {attr!r} not found; protected columns are: "
                f"{', '.join(data.protected)}"
            )
        frame = data.frame
        idx = np.arange(len(frame))
        if config.max_rows is not None and len(frame) > config.max_rows:
            rng = np.random.default_rng(data.seed if config.seed is None else config.seed)
            idx = np.sort(rng.choice(len(frame), size=config.max_rows, replace=False))
            frame = frame.iloc[idx].reset_index(drop=True)
        col, observed = _levels(frame[attr])
        frame = frame.assign(**{attr: col})
        known = [lv for lv in observed if lv != UNKNOWN]
        values = list(config.values) if config.values is not None else sorted(known)
        bad = [v for v in values if v not in known]
        if bad:
            raise ProbeError(
                f"probes[].values: {bad} not observed in column {attr!r}; "
                f"observed values: {', '.join(sorted(known))}"
            )
        reference = (
            config.reference
            if config.reference is not None
            else (next((lv for lv in known if lv in values), None))
        )
        if reference is not None and reference not in values:
            raise ProbeError(
                f"probes[].reference: {reference!r} is not one of the audited values "
                f"{values} of column {attr!r}"
            )
        if len(values) < 2 or len(frame) == 0:
            entry = ProbeEntry(
                kind="counterfactual-tabular",
                attribute=attr,
                groups=[],
                summary={"reason": "fewer than two values or no rows"},
                **entry_extra(reference, [], [], values),
            )
            return ProbeResult(entries=[entry])
        sub = dict(data.__dict__, frame=frame)
        if data.y_pred is not None:
            sub["y_pred"] = np.asarray(data.y_pred, dtype=bool)[idx]
        if data.score is not None:
            sub["score"] = np.asarray(data.score, dtype=float)[idx]
        if data.y_true is not None:
            sub["y_true"] = np.asarray(data.y_true, dtype=bool)[idx]
        sampled = ProbeInput(**sub)
        if model is not None and hasattr(model, "predict"):
            entry = _flip_test(sampled, model, config, values, reference)
        else:
            entry = knn_flip_test(sampled, config, values)
        info = {
            "rows_evaluated": int(len(frame)),
            "rows_total": int(data.rows),
            "sampled": bool(len(frame) < data.rows),
        }
        entry = entry.model_copy(update={"summary": {**entry.summary, **info}})
        return ProbeResult(entries=[entry])


def _flip_test(
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
    attr, frame, conf = config.attribute, data.frame, config.confidence
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
    r = values.index(reference)
    orig = frame[attr].astype(str).to_numpy()
    col = np.array([values.index(o) if o in values else -1 for o in orig], dtype=int)
    known = col >= 0
    rows_idx = np.arange(n)
    fact = np.where(known, score[rows_idx, np.maximum(col, 0)], np.nan)
    fact_sel = known & sel[rows_idx, np.maximum(col, 0)]
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
                "n_observed": int((orig == v).sum()),
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
                "insufficient_data": bool(n < data.min_group_size),
            }
        )
    pairs: list[dict[str, Any]] = []
    for o in values:
        rows = orig == o
        if not rows.any():
            continue
        k = int(rows.sum())
        for j, v in enumerate(values):
            if v == o:
                continue
            d = score[rows, j] - fact[rows]
            b = int((sel[rows, j] & ~fact_sel[rows]).sum())
            c = int((~sel[rows, j] & fact_sel[rows]).sum())
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
                    "p_value": wilcoxon_p(d) if has_score else mcnemar_exact(b, c),
                }
            )
    # Rows that moved most: largest |score(v) - observed score| over the other values.
    delta = np.where(known[:, None], score - fact[:, None], 0.0)
    best = np.argmax(np.abs(delta), axis=1)
    moved = np.abs(delta[np.arange(n), best])
    order = [i for i in np.argsort(-moved, kind="stable")[: config.examples] if moved[i] > 0]
    cols = list(getattr(model, "features", None) or frame.columns)
    examples = [
        {
            "group": str(orig[i]),
            "counterfactual": values[best[i]],
            "input": {c: _json_value(frame[c].iloc[i]) for c in cols if c in frame.columns},
            "score": float(fact[i]),
            "counterfactual_score": float(score[i, best[i]]),
            "delta": float(delta[i, best[i]]),
            "selected": bool(fact_sel[i]),
            "counterfactual_selected": bool(sel[i, best[i]]),
        }
        for i in order
    ]
    any_flip = sel.any(axis=1) & ~sel.all(axis=1)
    features = getattr(model, "features", None)
    summary: dict[str, Any] = {
        "mode": "counterfactual",
        "reference_rule": "config" if config.reference is not None else "most frequent level",
        "score_source": "score" if has_score else "label",
        "flip_rate_any": float(any_flip.mean()),
        "max_abs_score_gap": max(abs(g["score_gap"] or 0.0) for g in groups),
        "max_flip_rate": max(g["flip_rate"] or 0.0 for g in groups),
        "p_value_test": "wilcoxon signed-rank" if has_score else "mcnemar exact",
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
