"""Impact ratios against a reference group, and the EEOC two-standard-deviation rule.

- The reference is the group with the highest selection rate among groups large
  enough for a decision (``min_group_size``), as the four-fifths rule (EEOC Uniform
  Guidelines, 29 CFR 1607.4(D)) and NYC Local Law 144 (6 RCNY § 5-301) define it.
- Groups of the ``unknown`` category (any level unknown, for an intersection) are
  counted and reported but left out of impact ratios, their tests and findings, as
  LL144 requires; with ``impact_ratio_min_share`` (LL144 allows 0.02) categories under
  that share of the rows are left out the same way. Each such group says why.
- The two-standard-deviation rule (Hazelwood School District v. United States, 1977;
  EEOC practice beside four-fifths): the shortfall of a group's selection rate below
  the reference's, in standard deviations of the difference (pooled two-proportion z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from probes.base import ProbeError
from probes.counts import rates
from probes.stats import holm, ratio_ci, two_proportion_pvalues
from probes.util import finite_or_none

REASON_UNKNOWN = "unknown category"
REASON_SMALL = "under {share:.4g}% of the rows"


@dataclass(frozen=True)
class Impact:
    """Per-group impact ratio, its CI and tests; NaN / None where left out or undefined."""

    ref: int
    ratio: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    p_values: list[float | None]
    adjusted: list[float | None]
    sd: np.ndarray  # shortfall below the reference in standard deviations
    excluded: list[str | None]  # why a group is left out of impact ratios (None: it is not)


def exclusions(
    keys: list[tuple[str, ...]], share: np.ndarray, *, unknown_label: str, min_share: float
) -> list[str | None]:
    """The reason each group is left out of impact ratios, or None."""
    small = REASON_SMALL.format(share=100 * min_share)
    return [
        REASON_UNKNOWN if unknown_label in key else small if s < min_share else None
        for key, s in zip(keys, share)
    ]


def impact(
    selected: np.ndarray,
    n: np.ndarray,
    *,
    eligible: np.ndarray,
    excluded: list[str | None],
    confidence: float,
    reference: int | None = None,
    n_effective: np.ndarray | None = None,
) -> Impact:
    """Impact ratios, Katz CIs, p-values (Holm over the groups compared) and SD shortfalls.

    ``reference``: the index of the control group (``dataset.reference``); default the
    highest-rate group. ``n_effective`` (weighted counts): CIs and tests use the Kish
    effective sample size of each group, the rates stay the weighted ones.
    """
    out = np.array([e is not None for e in excluded], dtype=bool)
    sel = selected / np.where(n > 0, n, 1)
    pool = eligible & ~out
    if not pool.any():
        pool = (n > 0) & ~out
    if not pool.any():  # every group is left out: the highest rate is still shown as reference
        pool = n > 0
    ref = int(np.argmax(np.where(pool, sel, -np.inf))) if reference is None else reference
    if n_effective is not None:  # Kish: the tests see n_eff trials at the weighted rate
        n = np.asarray(n_effective, dtype=float)
        selected = sel * n
    ref_rate = sel[ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sel / ref_rate if ref_rate > 0 else np.full_like(sel, np.nan)
    lo, hi = ratio_ci(selected, n, selected[ref], n[ref], confidence=confidence)
    p_values = two_proportion_pvalues(selected, n, selected[ref], n[ref])
    p_values[ref] = None
    k2, n2 = float(selected[ref]), float(n[ref])
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (selected + k2) / (n + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n2))
        sd = np.where(se > 0, (ref_rate - sel) / se, np.nan)
    sd[ref] = np.nan
    for i in np.flatnonzero(out):
        ratio[i] = lo[i] = hi[i] = sd[i] = np.nan
        p_values[i] = None
    return Impact(ref, ratio, lo, hi, p_values, holm(p_values), sd, excluded)


def privileged_metrics(
    keys: list[tuple[str, ...]],
    cells: np.ndarray,
    attr: str,
    value: str,
    has_label: bool,
    unknown_label: str = "unknown",
) -> dict[str, Any]:
    """aif360-style metrics: unprivileged (all other known levels) minus privileged."""
    cells = np.asarray(cells)
    names = [k[0] for k in keys]
    if value not in names:
        raise ProbeError(
            f"dataset.privileged.{attr}: value {value!r} is not a group of column {attr!r} "
            f"(groups: {', '.join(names)})"
        )
    priv = cells[names.index(value)]
    unpriv = sum(
        (cells[i] for i, nm in enumerate(names) if nm not in (value, unknown_label)),
        np.zeros(4, dtype=cells.dtype),
    )
    rp, ru = rates(priv), rates(unpriv)
    out: dict[str, Any] = {
        "privileged_group": value,
        "disparate_impact": finite_or_none(ru["selection_rate"] / rp["selection_rate"])
        if rp["selection_rate"] > 0
        else None,
        "statistical_parity_difference": finite_or_none(
            ru["selection_rate"] - rp["selection_rate"]
        ),
    }
    if has_label:
        tpr_d = ru["tpr"] - rp["tpr"]
        fpr_d = ru["fpr"] - rp["fpr"]
        out.update(
            equal_opportunity_difference=finite_or_none(tpr_d),
            average_odds_difference=finite_or_none(0.5 * (fpr_d + tpr_d)),
            average_abs_odds_difference=finite_or_none(0.5 * (abs(fpr_d) + abs(tpr_d))),
            error_rate_difference=finite_or_none((1 - ru["accuracy"]) - (1 - rp["accuracy"])),
        )
    return out


def reference_index(
    keys: list[tuple[str, ...]], attributes: tuple[str, ...], reference: dict[str, Any] | None
) -> int | None:
    """Index of the ``dataset.reference`` group of a single-attribute entry, or None.

    An intersection keeps the default (the highest-rate group). A value that is not a
    group of the column is an input error naming it.
    """
    if not reference or len(attributes) != 1 or attributes[0] not in reference:
        return None
    attr, value = attributes[0], str(reference[attributes[0]])
    names = [k[0] for k in keys]
    if value not in names:
        raise ProbeError(
            f"dataset.reference.{attr}: value {value!r} is not a group of column {attr!r} "
            f"(groups: {', '.join(names)})"
        )
    return names.index(value)
