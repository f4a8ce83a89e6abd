"""Reproducibility manifest written into results.json (beside the contract's keys)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "biasaudit",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "fairlearn",
    "aif360",
    "torch",
    "transformers",
    "pydantic",
    "skops",
)

METRIC_DEFINITIONS = {
    "selection_rate": "selected / n, selected = predictions equal to favorable_label",
    "impact_ratio": "selection_rate / selection_rate of the reference group (the highest "
    "rate among groups with n >= min_group_size)",
    "selection_rate_ci": "Wilson score interval (or Clopper-Pearson with ci_method: exact)",
    "impact_ratio_ci": "Katz log interval for a ratio of proportions (0.5 added to zero cells)",
    "p_value": "two-sided test of the group's selection rate vs the reference group's: "
    "Pearson chi-square, Fisher exact when an expected count < 5",
    "p_value_adjusted": "Holm-Bonferroni across the groups of one attribute",
    "demographic_parity_difference": "max - min selection_rate over groups (fairlearn)",
    "demographic_parity_ratio": "min / max selection_rate over groups (fairlearn)",
    "equalized_odds_difference": "max(TPR difference, FPR difference) (fairlearn)",
    "equal_opportunity_difference": "max - min TPR over groups",
    "scoring_rate": "share of the group scoring above the overall median score (NYC LL144)",
    "bootstrap": "multinomial resampling of the cell counts == the row bootstrap; weighted: "
    "Poisson bootstrap of the rows, each cell drawn as Poisson(Kish n) x (sum w^2 / sum w)",
    "score_gap": "mean score of the group's variant minus the reference variant's, paired",
    "flip_rate": "share of inputs whose predicted label differs from the reference variant",
    "counterfactual_intervals": "paired t intervals and test over base texts; in template "
    "mode two-way cluster-robust (templates x names, Cameron-Gelbach-Miller)",
}


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The source checkout's commit, when running from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_manifest(**fields: Any) -> dict[str, Any]:
    return {
        "package": "biasaudit",
        "version": _version("biasaudit"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: _version(p) for p in PACKAGES if p != "biasaudit"},
        "metric_definitions": METRIC_DEFINITIONS,
        **fields,
    }
