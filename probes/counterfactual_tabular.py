"""Flip test on a tabular model: change only the protected attribute, re-predict.

With a model (``model.kind: sklearn``/``onnx``) every audited row is scored once
as observed and once with the attribute set to each audited value, all other
columns fixed (Kusner et al. 2017, "Counterfactual Fairness"; the "flip test"
of Black, Yeom & Fredrikson 2020; :mod:`probes.counterfactual_flip`). For each
value ``g`` the entry reports, over the same rows:

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
from probes.counterfactual_flip import flip_test
from probes.counterfactual_knn import knn_features, knn_flip_test
from probes.stats import mcnemar_exact, wilcoxon_p

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
            entry = flip_test(sampled, model, config, values, reference)
        else:
            entry = knn_flip_test(sampled, config, values)
        info = {
            "rows_evaluated": int(len(frame)),
            "rows_total": int(data.rows),
            "sampled": bool(len(frame) < data.rows),
        }
        entry = entry.model_copy(update={"summary": {**entry.summary, **info}})
        return ProbeResult(entries=[entry])
