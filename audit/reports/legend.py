"""Plain-language legend of the SageMaker Clarify abbreviations shown in a report.

A reader of the report meets columns named ``DPPL`` or ``DCR``; each gets its
name, what it measures and which value is good. Definitions and formulas are
in docs/metrics.md (§2 pre-training, §3 post-training, §4 generalized entropy).

>>> [e["abbr"] for e in clarify_legend(["DI", "max_abs_DPL", "n"])]
['DPL', 'DI']
"""

from __future__ import annotations

from collections.abc import Iterable

# abbreviation -> (name, what it measures for the group (facet) against everyone else, good value)
CLARIFY_TERMS: dict[str, tuple[str, str, str]] = {
    "CI": (
        "Class Imbalance",
        "how under-represented the group is: (others − group) / all rows; > 0 means fewer rows",
        "0 (balanced)",
    ),
    "DPL": (
        "Difference in Proportions of Labels",
        "others' favorable-label rate minus the group's; > 0: the group has fewer favorable labels",
        "0",
    ),
    "KL": (
        "Kullback–Leibler divergence",
        "how different the group's label distribution is from the others' (≥ 0)",
        "0 (lower is better)",
    ),
    "JS": (
        "Jensen–Shannon divergence",
        "symmetric distance between the label distributions (0 to ln 2)",
        "0 (lower is better)",
    ),
    "LP": (
        "Lp-norm (p = 2)",
        "Euclidean distance between the label distributions",
        "0 (lower is better)",
    ),
    "TVD": (
        "Total Variation Distance",
        "half the summed absolute difference of the label distributions",
        "0 (lower is better)",
    ),
    "KS": (
        "Kolmogorov–Smirnov distance",
        "largest difference between the label distributions",
        "0 (lower is better)",
    ),
    "CDDL": (
        "Conditional Demographic Disparity in Labels",
        "the group's share of rejections minus its share of acceptances, within strata",
        "0; > 0 disadvantages the group",
    ),
    "DPPL": (
        "Difference in Positive Proportions in Predicted Labels",
        "others' selection rate minus the group's; > 0: the group is selected less often",
        "0",
    ),
    "DI": (
        "Disparate Impact",
        "the group's selection rate divided by the others'; < 1: selected less often",
        "1 (below 0.8 fails the four-fifths rule)",
    ),
    "DCA": (
        "Difference in Conditional Acceptance",
        "observed over predicted favorable, others minus group; < 0: accepted less than labels say",
        "0",
    ),
    "DCR": (
        "Difference in Conditional Rejection",
        "observed over predicted unfavorable, group minus others; < 0: rejected more than labels",
        "0",
    ),
    "RD": (
        "Recall Difference",
        "others' true positive rate minus the group's; > 0: qualified members missed more often",
        "0",
    ),
    "SD": (
        "Specificity Difference",
        "group's true negative rate minus the others'",
        "0",
    ),
    "DAR": (
        "Difference in Acceptance Rates",
        "others' precision minus the group's; > 0: the group's acceptances are correct less often",
        "0",
    ),
    "DRR": (
        "Difference in Rejection Rates",
        "group's negative predictive value minus the others'",
        "0",
    ),
    "AD": (
        "Accuracy Difference",
        "others' accuracy minus the group's; > 0: the model is less accurate on the group",
        "0",
    ),
    "TE": (
        "Treatment Equality",
        "false negatives per false positive, group minus others; > 0: more false rejections",
        "0",
    ),
    "CDDPL": (
        "Conditional Demographic Disparity in Predicted Labels",
        "as CDDL, with the model's decisions in place of the labels",
        "0; > 0 disadvantages the group",
    ),
    "GE": (
        "Generalized Entropy index (α = 2)",
        "inequality of the benefit individuals get from the decisions",
        "0 (lower is better)",
    ),
}


def clarify_legend(keys: Iterable[str]) -> list[dict[str, str]]:
    """Legend entries for the Clarify abbreviations among ``keys``, in the legend's order.

    A key names an abbreviation when it is one (``DPPL``) or ends in one after an
    underscore or dot (``max_abs_DPL``, ``clarify.DI``).
    """
    found: set[str] = set()
    for key in keys:
        for token in str(key).replace(".", "_").split("_"):
            if token in CLARIFY_TERMS:
                found.add(token)
        if str(key) == "generalized_entropy_index":
            found.add("GE")
    return [
        {"abbr": abbr, "name": name, "meaning": meaning, "good": good}
        for abbr, (name, meaning, good) in CLARIFY_TERMS.items()
        if abbr in found
    ]
