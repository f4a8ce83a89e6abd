"""Reproducibility manifest written into results.json (beside the contract's keys)."""

from __future__ import annotations

import contextlib
import platform
import re
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


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _git_dir(start: Path) -> Path | None:
    """The git directory of the checkout holding ``start`` (a worktree's ``.git`` file
    names it), else None."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            named = Path(text.removeprefix("gitdir:").strip())
            return named if named.is_absolute() else folder / named
    return None


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    """``ref`` (``refs/heads/main``) as a commit: its loose file (in the worktree's git
    directory or the common one), else its line of ``packed-refs``."""
    common = git_dir
    with contextlib.suppress(OSError):
        common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
    for base in (git_dir, common):
        with contextlib.suppress(OSError):
            value = (base / ref).read_text(encoding="utf-8").strip()
            if _SHA.fullmatch(value):
                return value
    with contextlib.suppress(OSError):
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.fullmatch(sha):
                return sha
    return None


def read_head(start: Path) -> str | None:
    """The commit checked out in the git checkout holding ``start``, read from its files."""
    git_dir = _git_dir(start)
    if git_dir is None:
        return None
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if _SHA.fullmatch(head):
        return head
    if head.startswith("ref:"):
        return _resolve_ref(git_dir, head.removeprefix("ref:").strip())
    return None


def git_commit() -> str | None:
    """The source checkout's commit, when running from one.

    Read from the git directory's files, not by running ``git``: every process on a
    machine (an embedded run, a worker) must write the same manifest, and a ``git``
    child timed out on a loaded machine. ``git rev-parse`` remains the fallback for a
    layout the files do not resolve.
    """
    here = Path(__file__).resolve().parent
    with contextlib.suppress(OSError):
        if (found := read_head(here)) is not None:
            return found
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=30
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
