"""Counterfactual text probe: swap names / pronouns / gendered terms, measure the score change.

Every base text (a dataset row, or a built-in template) is rewritten once per group of an
attribute, changing only the words that signal the group; all variants go through the model
in one call, and each group is compared with the reference group on the same base texts:
paired mean score difference (``score_gap``), share of flipped labels (``flip_rate``) and a
paired t-test. References: Prabhakaran et al. (2019), perturbation sensitivity analysis.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field

from probes import counterfactual_text_models as typed
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
from probes.models.prompt import (
    ANSWER_MASS_CHECK,
    add_answer_mass,
    answer_summary,
    prompted_scores,
)
from probes.paired_stats import (
    CLUSTERED_TEST,
    PAIRED_TEST,
    cluster_robust_se,
    clustered_interval,
    clustered_p_value,
    paired_p_value,
    t_interval,
)
from probes.stats import mcnemar_exact, proportion_ci
from probes.text_variants import Units, largest_changes, plan_variants
from probes.util import finite_or_none

__all__ = [
    "CLUSTERED_TEST",
    "PAIRED_TEST",
    "CounterfactualTextConfig",
    "NameSwapProbe",
    "cluster_robust_se",
    "paired_p_value",
    "score_texts",
]


class CounterfactualTextConfig(ProbeConfig):
    """Configuration of the counterfactual-text probe (spec ``probes[i]``)."""

    kind: Literal["counterfactual-text"] = "counterfactual-text"
    text_column: str | None = Field(
        default=None, description="dataset column with the texts; omit to use built-in templates"
    )
    templates: Literal["hiring", "lending"] | None = Field(
        default=None, description="built-in template set (default: the audit domain, or hiring)"
    )
    swap: Literal["names", "pronouns", "terms"] = "names"
    attributes: list[str] = Field(default_factory=lambda: ["gender"], min_length=1)
    groups: dict[str, list[str]] | None = Field(
        default=None, description="groups to compare per attribute (default: the lexicon's)"
    )
    reference: dict[str, str] | None = Field(
        default=None,
        description="reference group per attribute (default: male for gender, white for race, "
        "else the lexicon's first group)",
    )
    lexicon: dict[str, Any] | None = Field(
        default=None, description="user lexicon merged into the built-in one (mode: extend|replace)"
    )
    lexicon_path: str | None = Field(default=None, description="JSON file with a user lexicon")
    names_per_group: int | None = Field(default=None, ge=1)
    max_texts: int | None = Field(default=None, ge=1, description="cap on base texts per attribute")
    examples: int = Field(default=10, ge=0)
    seed: int = 0
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


def _group_stats(
    s: np.ndarray,
    p: np.ndarray,
    groups: list[str],
    ref: int,
    confidence: float,
    clusters: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Per-group means, paired gaps and flip rates with intervals and p-values.

    Without ``clusters`` the base texts are independent units (t intervals,
    Wilson for flips, paired t-test). With ``clusters`` (template mode: units
    share templates and names) every interval and p-value uses two-way
    cluster-robust standard errors (:func:`cluster_robust_se`).
    """
    n = s.shape[0]
    out = []
    for j, g in enumerate(groups):
        row: dict[str, Any] = {"group": g, "n": int(n)}
        if n == 0:
            row |= dict.fromkeys(
                (
                    "mean_score",
                    "mean_score_ci",
                    "score_gap",
                    "score_gap_ci",
                    "flip_rate",
                    "flip_rate_ci",
                    "p_value",
                    "flip_p_value",
                )
            )
            out.append(row)
            continue
        diff = s[:, j] - s[:, ref]
        flips = int((p[:, j] != p[:, ref]).sum())
        ups, downs = int((p[:, j] & ~p[:, ref]).sum()), int((~p[:, j] & p[:, ref]).sum())
        lo, hi = proportion_ci(np.array([flips]), np.array([n]), confidence=confidence)
        if clusters is None:
            mean_ci = t_interval(s[:, j], confidence, 0.0, 1.0)
            gap_ci = t_interval(diff, confidence, -1.0, 1.0)
            flip_ci: list[float] | None = [float(lo[0]), float(hi[0])]
            p_value = paired_p_value(diff)
            flip_p: float | None = mcnemar_exact(ups, downs)
        else:
            flipped = (p[:, j] != p[:, ref]).astype(float)
            mean_ci = clustered_interval(s[:, j], clusters, confidence, 0.0, 1.0)
            gap_ci = clustered_interval(diff, clusters, confidence, -1.0, 1.0)
            flip_ci = clustered_interval(flipped, clusters, confidence, 0.0, 1.0)
            p_value = clustered_p_value(diff, clusters)
            # signed flips (+1 up, -1 down): McNemar's null (as many up as down), clustered
            flip_p = clustered_p_value(p[:, j].astype(float) - p[:, ref], clusters)
        row |= {
            "mean_score": finite_or_none(s[:, j].mean()),
            "mean_score_ci": mean_ci,
            "score_gap": finite_or_none(diff.mean()),
            "score_gap_ci": None if j == ref else gap_ci,
            "flip_rate": flips / n,
            "flip_rate_ci": None if j == ref else flip_ci,
            "p_value": None if j == ref else p_value,
            "flip_p_value": None if j == ref else flip_p,
        }
        out.append(row)
    return out


def _examples(
    units: Units, s: np.ndarray, groups: list[str], ref: int, k: int
) -> list[dict[str, Any]]:
    others = [j for j in range(len(groups)) if j != ref]
    delta = s[:, others] - s[:, [ref]]

    def row(u: int, j: int, c: int) -> dict[str, Any]:
        return {
            "text": units[u][groups[ref]],
            "counterfactual": units[u][groups[j]],
            "score": float(s[u, ref]),
            "counterfactual_score": float(s[u, j]),
            "delta": float(delta[u, c]),
        }

    return largest_changes(delta, groups, ref, k, row)


def _hooks(data: ProbeInput) -> dict[str, Any]:
    """The progress (mapped to 5-95% of the probe) and cancel hooks of a scoring call."""
    kwargs: dict[str, Any] = {}
    if data.progress is not None:
        report = data.progress
        kwargs["progress"] = lambda f: report(0.05 + 0.9 * float(f))
    if data.should_cancel is not None:
        kwargs["should_cancel"] = data.should_cancel
    return kwargs


def _call(fn: Callable[..., Any], texts: list[str], data: ProbeInput) -> np.ndarray:
    """Call ``fn(texts)``, passing progress/cancel hooks when the adapter accepts them."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = {}  # type: ignore[assignment]
    kwargs = {k: v for k, v in _hooks(data).items() if k in params}
    return np.asarray(fn(texts, **kwargs))


def score_texts(model: Any, texts: list[str], data: ProbeInput) -> tuple[np.ndarray, np.ndarray]:
    """(scores, predicted labels) for ``texts`` with one scoring pass.

    When the adapter exposes a float ``threshold`` (as the Hugging Face adapter
    does, with ``predict = score >= threshold``) the labels come from the scores
    and the model runs once; otherwise ``model.predict`` is called too.
    """
    if not texts:
        return np.zeros(0), np.zeros(0, dtype=bool)
    scores = _call(model.score, texts, data).astype(float).reshape(-1)
    if scores.shape != (len(texts),):
        raise ProbeError(f"model.score returned {scores.shape[0]} scores for {len(texts)} texts")
    threshold = getattr(model, "threshold", None)
    if isinstance(threshold, float | int) and not isinstance(threshold, bool):
        return scores, scores >= float(threshold)
    preds = _call(model.predict, texts, data).astype(bool).reshape(-1)
    return scores, preds


@register_probe(
    "counterfactual-text", kind="counterfactual", needs=("model",), tags=("text", "model")
)
class NameSwapProbe(Probe):
    """Swap first names / pronouns / gendered terms between groups; measure the score change.

    References: Bertrand & Mullainathan (2004); Garg et al. (2019).
    """

    config_model = CounterfactualTextConfig
    title = "Counterfactual name/term swap"
    layout = "counterfactual"
    group_model = typed.SwapGroup
    summary_model = typed.SwapSummary
    entry_fields = typed.SwapEntryFields
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
        ANSWER_MASS_CHECK,
    )

    @classmethod
    def uses_dataset(cls, raw: Mapping[str, Any]) -> bool:
        """Only with ``text_column``: the built-in templates need no dataset."""
        return bool(raw.get("text_column"))

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: CounterfactualTextConfig
    ) -> ProbeResult:
        if model is None:
            raise ProbeError("model: the counterfactual-text probe needs a model (model.kind)")
        cfg = config
        plans, source = plan_variants(data, cfg)
        if data.progress is not None:
            data.progress(0.05)
        all_texts = list(dict.fromkeys(t for plan in plans for u in plan.units for t in u.values()))
        prompted = prompted_scores(model, all_texts, **_hooks(data))
        if prompted is None:
            scores, preds = score_texts(model, all_texts, data)
        else:  # a prompted causal LM: scores and answer mass from one pass
            scores = prompted.share(0)
            preds = scores >= float(getattr(model, "threshold", 0.5))
        at = {t: i for i, t in enumerate(all_texts)}
        entries = []
        for plan in plans:
            groups, units, clusters = plan.groups, plan.units, plan.clusters
            idx = np.array([[at[u[g]] for g in groups] for u in units], dtype=int).reshape(
                len(units), len(groups)
            )
            s, p = scores[idx], preds[idx]
            r = groups.index(plan.reference)
            stats = _group_stats(s, p, groups, r, cfg.confidence, clusters)
            extra = {}
            if prompted is not None:
                add_answer_mass(stats, prompted.mass[idx])
                extra = answer_summary(prompted.mass[np.unique(idx)], prompted.truncated)
            gaps = [abs(g["score_gap"]) for g in stats if g["score_gap"] is not None]
            flips = [g["flip_rate"] for g in stats if g["flip_rate"] is not None]
            entries.append(
                ProbeEntry.model_validate(
                    {
                        "kind": self.name,
                        "attribute": plan.attribute,
                        "reference_group": plan.reference,
                        "groups": stats,
                        "examples": _examples(units, s, groups, r, cfg.examples),
                        "summary": {
                            "max_abs_score_gap": max(gaps) if gaps else None,
                            "max_flip_rate": max(flips) if flips else None,
                            "base_texts": len(units),
                            "skipped_texts": plan.skipped,
                            "swap": cfg.swap,
                            "source": source,
                            "test": PAIRED_TEST if clusters is None else CLUSTERED_TEST,
                            **extra,
                        },
                    }
                )
            )
        if data.progress is not None:
            data.progress(1.0)
        return ProbeResult(entries=entries, extra={"scored_texts": len(all_texts)})
