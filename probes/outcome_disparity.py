"""Disparities in a continuous outcome (APR, rate spread, credit limit) between groups.

Fair-lending pricing reviews compare what each group pays with what the control
group pays, first raw, then controlling for the legitimate pricing factors
(credit score, loan-to-value, term...): a gap that a legitimate factor explains
is not a finding; one that survives the controls is. For each protected
attribute and each group against the reference (control) group:

- ``mean`` with its t interval, ``sd``, ``n`` and ``n_effective`` (Kish);
- ``difference`` (group mean minus reference mean, robust HC3 test: ``p_value``,
  Holm-adjusted over the groups: ``p_value_adjusted``) and ``ratio`` of means;
- ``standardized_mean_difference``: difference over the pooled SD (Cohen's d);
- ``adjusted_difference``: the group's coefficient in an OLS (WLS with weights)
  of the outcome on group indicators and the named ``controls``, HC3 errors,
  ``adjusted_difference_p_value`` and its Holm adjustment.

Checks: ``|standardized_mean_difference| <= max_abs_smd`` (0.2, Cohen's "small"
effect) and ``adverse_adjusted_difference <= max_adjusted_difference`` (0, in
outcome units) judged only when the adjusted difference is significant
(Holm-adjusted p < ``policy.alpha``): by default any significant adverse gap left
after the controls fails; set a materiality threshold (e.g. 0.05 for 5 bp of APR
in percent) to tolerate smaller ones. ``adverse`` says which direction hurts
(``higher`` for APR, ``lower`` for a credit limit, ``either`` by default).

The reference group is ``reference`` from the config, else the largest group by
(weighted) size, never ``unknown``.

References: CFPB (2014), "Using publicly available information to proxy for
unidentified race and ethnicity"; Cohen (1988); MacKinnon & White (1985), HC3;
Long & Ervin (2000) on HC3 in small samples.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from probes import outcome_disparity_models as typed
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
from probes.outcome_mi import MI_DRAWS, apply_imputed, imputed_comparisons
from probes.outcome_stats import compare_outcomes
from probes.proxy import RACES
from probes.proxy_groups import PROXY_ATTRIBUTE, outcome_posteriors

__all__ = ["OutcomeDisparityConfig", "OutcomeDisparityProbe", "compare_outcomes"]

Adverse = Literal["higher", "lower", "either"]
MSG_NO_OUTCOME = (
    "probes[outcome-disparity].outcome: required (or dataset.outcome): the continuous "
    "outcome column (e.g. apr, rate_spread, credit_limit)"
)
MSG_MISSING_COLUMN = (
    "probes[outcome-disparity].{field}: column {column!r} not found; columns: {columns}"
)


class OutcomeDisparityConfig(ProbeConfig):
    """Configuration of the outcome-disparity probe (spec ``probes[i]``)."""

    kind: Literal["outcome-disparity"] = "outcome-disparity"
    outcome: str | None = Field(
        default=None, description="continuous outcome column (default: dataset.outcome)"
    )
    attributes: list[str] | None = Field(
        default=None, description="protected columns to compare (default: dataset.protected)"
    )
    reference: str | dict[str, str] | None = Field(
        default=None,
        description="control group: a value, or {attribute: value} (default: the largest group)",
    )
    controls: list[str] = Field(
        default_factory=list,
        description="legitimate factors for the adjusted difference (numeric, or categorical "
        "columns one-hot encoded)",
    )
    weight: str | None = Field(default=None, description="non-negative row-weight column")
    adverse: Adverse = Field(
        default="either",
        description="which direction hurts a group: higher (APR), lower (credit limit), either",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_group_size: int | None = Field(
        default=None, ge=1, description="groups with fewer effective rows are insufficient_data"
    )


@register_probe("outcome-disparity", kind="outcome", tags=("lending", "pricing", "continuous"))
class OutcomeDisparityProbe(Probe):
    """Mean, standardized and regression-adjusted differences of a continuous outcome.

    References: CFPB (2014) proxy methodology; Cohen (1988); MacKinnon & White (1985).
    """

    config_model = OutcomeDisparityConfig
    title = "Outcome disparity (continuous outcome)"
    layout = "table"
    group_model = typed.OutcomeGroup
    summary_model = typed.OutcomeSummary
    entry_fields = typed.OutcomeEntryFields
    example = typed.EXAMPLE
    checks = (
        Check(
            "standardized_mean_difference",
            "max_abs_smd",
            0.2,
            "max",
            "largest absolute standardized mean difference from the reference group",
            absolute=True,
            ci="standardized_mean_difference_ci",
            insufficient_flag="insufficient_data",
            skip_missing=True,
            skip_reference=True,
            ge=0,
        ),
        Check(
            "adjusted_difference",
            "max_adjusted_difference",
            0.0,
            "max",
            "largest adverse regression-adjusted difference (outcome units) tolerated when "
            "significant (Holm-adjusted p < alpha)",
            field="adverse_adjusted_difference",
            ci="adverse_adjusted_difference_ci",
            p_value="adjusted_difference_p_value_holm",
            require_significance=True,
            insufficient_flag="insufficient_data",
            skip_missing=True,
            skip_reference=True,
            ge=0,
        ),
    )

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: OutcomeDisparityConfig
    ) -> ProbeResult:
        frame = data.frame
        outcome = config.outcome or data.outcome
        y = _outcome(frame, outcome)
        attrs = list(config.attributes or data.protected)
        if data.proxy is not None and not config.attributes:
            attrs.append(PROXY_ATTRIBUTE)  # dataset.proxy: groups by posterior membership
        recorded = [a for a in attrs if not (a == PROXY_ATTRIBUTE and data.proxy is not None)]
        for field, cols in (("attributes", recorded), ("controls", config.controls)):
            _require(frame, field, cols)
        clash = sorted(set(config.controls) & (set(attrs) | {outcome}))
        if clash:
            raise ProbeError(
                f"probes[outcome-disparity].controls: {clash} is also the outcome or a compared "
                "attribute; controls are the legitimate factors only"
            )
        weights = _weights(frame, config.weight) if config.weight else data.weight
        controls = frame[config.controls] if config.controls else None
        min_size = config.min_group_size or data.min_group_size
        entries = []
        for attr in attrs:
            membership = _membership(frame, attr, data.proxy)
            groups, summary = compare_outcomes(
                outcome=y,
                membership=membership,
                controls=controls,
                weights=weights,
                reference=_ref_for(config.reference, attr) or data.reference.get(attr),
                adverse=config.adverse,
                confidence=config.confidence,
                min_group_size=min_size,
            )
            if attr == PROXY_ATTRIBUTE and data.proxy is not None:
                summary["proxy"] = _impute(data, groups, summary, y, controls, weights, config)
            summary = {"outcome": outcome, "controls": list(config.controls), **summary}
            summary["weight"] = config.weight or (None if data.weight is None else "dataset.weight")
            entries.append(
                ProbeEntry.model_validate(
                    {
                        "kind": "outcome-disparity",
                        "attribute": attr,
                        "reference_group": summary["reference_group"],
                        "groups": groups,
                        "summary": summary,
                    }
                )
            )
        return ProbeResult(entries=entries)


def _impute(
    data: ProbeInput,
    groups: list[dict[str, Any]],
    summary: dict[str, Any],
    y: np.ndarray,
    controls: pd.DataFrame | None,
    weights: np.ndarray | None,
    config: OutcomeDisparityConfig,
) -> dict[str, Any]:
    """The race_proxy comparisons by multiple imputation (:mod:`probes.outcome_mi`)."""
    ref = summary.get("reference_group")
    others = [g["group"] for g in groups if g["group"] != ref and g.get("difference") is not None]
    if ref is None or not others:
        return {"imputations": 0}
    post = data.proxy.posteriors[list(RACES)]
    prior = None
    if data.y_pred is not None:  # the outcome exists for some decisions only (APR: approved)
        base = np.ones(len(post)) if data.weight is None else np.asarray(data.weight, float)
        prior = outcome_posteriors(
            post.to_numpy(dtype=float), np.asarray(data.y_pred, dtype=float), base
        )
    imputed = imputed_comparisons(
        outcome=y,
        posteriors=post,
        others=others,
        reference=ref,
        controls=controls,
        weights=weights,
        decision_posteriors=prior,
        confidence=config.confidence,
        seed=data.seed,
    )
    apply_imputed(groups, imputed, config.adverse)
    for field, key in (
        ("standardized_mean_difference", "max_abs_standardized_mean_difference"),
        ("adverse_adjusted_difference", "max_adverse_adjusted_difference"),
    ):
        vals = [abs(g[field]) if "standardized" in field else g[field]
                for g in groups if g.get(field) is not None]  # fmt: skip
        summary[key] = max(vals) if vals else None
    return {
        "imputations": MI_DRAWS,
        "estimator": "multiple imputation from P(race | proxy, decision, outcome); "
        "posterior-membership values beside as <field>_weighted",
    }


def _membership(frame: pd.DataFrame, attr: str, proxy: Any) -> pd.DataFrame:
    """One-hot groups of a recorded column, or the proxy's posteriors for race_proxy."""
    if attr not in frame.columns and proxy is not None:
        post = proxy.posteriors[list(RACES)]
        return post.set_axis(frame.index, axis=0).astype(float)
    col = frame[attr]
    levels = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else None
    membership = pd.get_dummies(col.astype("string").fillna("unknown"), dtype=float)
    if levels is not None:
        order = [str(lv) for lv in levels if str(lv) in membership.columns]
        membership = membership[order]
    return membership


def _ref_for(reference: str | dict[str, str] | None, attr: str) -> str | None:
    if isinstance(reference, dict):
        return reference.get(attr)
    return reference


def _require(frame: pd.DataFrame, field: str, columns: list[str]) -> None:
    for c in columns:
        if c not in frame.columns:
            raise ProbeError(
                MSG_MISSING_COLUMN.format(
                    field=field, column=c, columns=", ".join(map(str, frame.columns))
                )
            )


def _outcome(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if not column:
        raise ProbeError(MSG_NO_OUTCOME)
    _require(frame, "outcome", [column])
    raw = frame[column]
    y = pd.to_numeric(raw, errors="coerce")
    bad = (y.isna() & raw.notna()).to_numpy() | np.isinf(y.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row = int(np.argmax(bad))
        raise ProbeError(
            f"probes[outcome-disparity].outcome: column {column!r} has {int(bad.sum())} "
            f"non-numeric or infinite value(s) (first at row {row}: {raw.iloc[row]!r}); "
            "missing values are allowed and left out"
        )
    return y.to_numpy(dtype=float, na_value=np.nan)


def _weights(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if column is None:
        return None
    _require(frame, "weight", [column])
    w = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise ProbeError(
            f"probes[outcome-disparity].weight: column {column!r} needs finite non-negative "
            f"numbers; row {row} has {frame[column].iloc[row]!r}"
        )
    return w
