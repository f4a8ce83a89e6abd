"""Less-discriminatory-alternative (LDA) search: would a fairer model serve the business as well?

Under disparate-impact doctrine a lender or employer whose model has a
disparity must show a business need, and loses if a less discriminatory
alternative would meet it. Many models are about equally accurate (model
multiplicity), so one often exists (Gillis, Meursault & Ustun, FAccT 2024).
The probe refits the model in use in many ways that never take the protected
attribute as a decision input (:mod:`probes.lda.candidates`), judges each on the
audit's holdout rows (:mod:`probes.lda.evaluate`), and reports the Pareto
frontier, the best alternative within the loss budget and the features that
drive the disparity (:mod:`probes.lda.frontier`). See docs/lda.md.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

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
from probes.lda import candidates as cands_mod
from probes.lda import models as typed
from probes.lda.candidates import Candidate
from probes.lda.evaluate import Evaluation, Holdout, evaluate, make_holdout, paired_gain_ci
from probes.lda.frontier import choose_best, drivers, loss, pareto
from probes.lda.search import SearchOutcome, run_search
from probes.util import canonical_label

BASELINE = "model in use"
MSG_NEEDS_SKLEARN = (
    "model.kind: lda-search refits the model in use, so it needs model.kind: sklearn "
    "(a fitted scikit-learn pipeline in a .skops file)"
)
MSG_NO_LABEL = "dataset.label: lda-search judges performance on the holdout; set dataset.label"
MSG_NO_PROBA = "model.path: lda-search needs a classifier with predict_proba (a score)"
MSG_TRAIN_COLUMNS = "probes[].train: {path} lacks column(s) {missing}; it needs {needed}"


class LdaSearchConfig(ProbeConfig):
    """Configuration of the less-discriminatory-alternative search (spec ``probes[i]``)."""

    kind: Literal["lda-search"] = "lda-search"
    attribute: str = Field(description="protected column whose lowest impact ratio is searched")
    train: str = Field(
        description="training data (CSV or Parquet) with the model's features, the label and "
        "the attribute; candidates are fitted on it, never on the audited holdout"
    )
    metric: Literal["auc", "accuracy"] = Field(
        default="auc", description="business-necessity measure judged on the holdout"
    )
    max_performance_loss: float = Field(
        default=0.01, ge=0, le=1, description="alternatives may lose at most this much"
    )
    target_impact_ratio: float = Field(
        default=0.8, gt=0, le=1, description="lowest impact ratio under which an LDA is needed"
    )
    time_budget_s: float = Field(default=600, gt=0, description="stop fitting after this long")
    n_jobs: int | None = Field(default=None, description="parallel fits (default: every CPU)")
    seeds: int = Field(default=3, ge=0, le=50, description="refits with other seeds")
    hyperparameters: bool = Field(default=True, description="neighbour hyperparameter values")
    drop_features: bool = Field(default=True, description="each feature neutralized in turn")
    reductions: bool = Field(
        default=True, description="fairlearn GridSearch / ExponentiatedGradient"
    )
    bounds: list[float] = Field(
        default=[0.02, 0.05, 0.1], description="ExponentiatedGradient difference bounds"
    )
    grid_size: int = Field(default=5, ge=2, le=50, description="GridSearch grid size")
    threshold_steps: int = Field(default=6, ge=0, le=50, description="thresholds each side of 0.5")
    threshold_step: float = Field(default=0.025, gt=0, lt=0.5)
    bootstrap: int = Field(default=200, ge=20, le=5000, description="bootstrap replicates (CIs)")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int | None = Field(default=None, description="search seed (default: the audit seed)")


def _train_frame(config: LdaSearchConfig, data: ProbeInput, needed: list[str]) -> pd.DataFrame:
    path = Path(config.train)
    if not path.is_absolute() and data.base_dir is not None:
        path = Path(data.base_dir) / path
    if not path.is_file():
        raise ProbeError(f"probes[].train: file not found: {config.train} (CSV or Parquet)")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ProbeError(f"probes[].train: cannot read {config.train}: {exc}") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ProbeError(
            MSG_TRAIN_COLUMNS.format(path=config.train, missing=missing, needed=needed)
        )
    return frame


def _model_frame(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    from probes.models.sklearn import to_model_values

    return pd.DataFrame({f: to_model_values(frame[f]) for f in features}, index=frame.index)


def _record(c: Any, ev: Evaluation, base: Evaluation, conf: float) -> dict[str, Any]:
    rec = {k: v for k, v in ev.record.items() if k != "groups"}
    rec = {"name": c.name, "family": c.family, **rec, "threshold": c.threshold}
    rec["performance_loss"] = loss(base.record, rec)
    if c.family == "threshold" and rec["performance_loss"] is not None:
        # a threshold move leaves AUC unchanged: judge it by accuracy as well
        acc = float(base.record["accuracy"] or 0) - float(rec["accuracy"] or 0)
        rec["performance_loss"] = max(rec["performance_loss"], acc)
    rec["min_impact_ratio_gain_ci"] = paired_gain_ci(base, ev, conf)
    rec["dropped"] = list(c.dropped)
    rec["params"] = {k: v for k, v in c.params.items()}
    return rec


@register_probe("lda-search", kind="lda", needs=("model",), tags=("tabular", "lending", "lda"))
class LdaSearchProbe(Probe):
    """Search for a less discriminatory alternative to the model in use.

    References: Gillis, Meursault & Ustun (2024), "Operationalizing the search for
    less discriminatory alternatives in fair lending"; Black et al. (2022), model
    multiplicity; Agarwal et al. (2018), fairlearn reductions.
    """

    config_model = LdaSearchConfig
    title = "Less discriminatory alternative search"
    layout = "frontier"
    group_model = typed.LdaGroup
    summary_model = typed.LdaSummary
    entry_fields = typed.LdaEntryFields
    example = typed.EXAMPLE
    file_fields = ("train",)
    checks = (
        Check(
            "lda_available",
            "min_impact_ratio",
            0.8,
            "max",
            "an alternative within the loss budget lifts the lowest impact ratio above the "
            "threshold (or by more than its CI) while the model in use is below it",
            field="lda_min_impact_ratio",
            ci="lda_min_impact_ratio_ci",
            p_value=None,
            baseline_field="baseline_min_impact_ratio",
            fail_flag="lda_significant",
            skip_missing=True,
            ge=0,
            le=1,
        ),
    )

    @classmethod
    def uses_dataset(cls, raw: Mapping[str, Any]) -> bool:
        return True

    @classmethod
    def uses_protected(cls, raw: Mapping[str, Any]) -> bool:
        return True

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: LdaSearchConfig
    ) -> ProbeResult:
        from threadpoolctl import threadpool_limits

        # parallel across candidates, one BLAS/OpenMP thread each: nested threads on
        # busy cores spin (a gradient-boosting fit ran 50x slower on a loaded machine)
        with threadpool_limits(limits=_threads(config.n_jobs)):
            return _search(data, model, config)


def _search(data: ProbeInput, model: ModelAdapter | None, config: LdaSearchConfig) -> ProbeResult:
    """Validate, evaluate the model in use, fit and evaluate the candidates, decide."""
    started = time.monotonic()
    est = getattr(model, "estimator", None)
    if model is None or est is None or not hasattr(model, "predict_with_score"):
        raise ProbeError(MSG_NEEDS_SKLEARN)
    attr = config.attribute
    if attr not in data.frame.columns:
        raise ProbeError(
            f"probes[].attribute: column {attr!r} not found; protected columns are: "
            f"{', '.join(data.protected)}"
        )
    if data.y_true is None or data.label is None:
        raise ProbeError(MSG_NO_LABEL)
    features = tuple(getattr(model, "features", ()))
    excluded = tuple(c for c in features if c in data.protected or c == attr)
    train = _train_frame(config, data, [*features, data.label, attr])
    fav = canonical_label(data.favorable_label)
    y_train = np.array([canonical_label(v) == fav for v in train[data.label]], dtype=int)
    if len(np.unique(y_train)) < 2 or len(data.frame) == 0:
        raise ProbeError(
            f"probes[].train: {config.train} needs both outcomes of {data.label!r}, and the "
            "holdout needs rows"
        )
    seed = data.seed if config.seed is None else config.seed
    t_eval = time.monotonic()  # predicting and evaluating one candidate
    sel, score = model.predict_with_score(data.frame)  # type: ignore[attr-defined]
    if score is None:
        raise ProbeError(MSG_NO_PROBA)
    holdout = _holdout(config, data, seed)
    base = evaluate(holdout, score=score, selected=sel, metric=config.metric)
    t_eval = time.monotonic() - t_eval
    specs = cands_mod.plan(
        est,
        features=features,
        excluded=excluded,
        seeds=config.seeds,
        hyperparameters=config.hyperparameters,
        drop_features=config.drop_features,
        reductions=config.reductions,
        bounds=tuple(config.bounds),
        grid_size=config.grid_size,
    )
    outcome = run_search(
        specs,
        est,
        x=_model_frame(train, features),
        y=y_train,
        sensitive=train[attr].fillna("unknown").astype(str).to_numpy(),
        excluded=excluded,
        seed=seed,
        n_jobs=config.n_jobs,
        budget_s=_fit_budget(config, started, t_eval, len(specs)),
        progress=data.progress,
        should_cancel=data.should_cancel,
    )
    found = _with_thresholds(config, list(outcome.candidates))
    return _result(config, base, holdout, found, outcome, _model_frame(data.frame, features))


def _threads(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    jobs = n_jobs if n_jobs and n_jobs > 0 else cpus
    return max(1, cpus // jobs)


def _fit_budget(config: LdaSearchConfig, started: float, t_eval: float, n_specs: int) -> float:
    """Time left for fitting: the budget less what was spent and what evaluating will take.

    Each recipe is counted as 1.5 candidates to predict and evaluate (grids give
    several); a moved threshold reuses its model's scores and costs little.
    """
    to_evaluate = 1.5 * n_specs + 0.2 * config.threshold_steps
    spent = time.monotonic() - started
    return max(0.0, config.time_budget_s - spent - t_eval * to_evaluate)


def _holdout(config: LdaSearchConfig, data: ProbeInput, seed: int) -> Holdout:
    """The holdout's groups and bootstrap; weights and control group when the dataset sets them."""
    control = data.reference.get(config.attribute)  # dataset.reference
    return make_holdout(
        y=np.asarray(data.y_true, dtype=bool),
        groups=data.frame[config.attribute].astype(str),
        n_boot=config.bootstrap,
        seed=seed,
        confidence=config.confidence,
        min_group_size=data.min_group_size,
        weights=data.weight,  # dataset.weight
        reference=None if control is None else str(control),
        unknown_label=data.unknown_label,
    )


def _with_thresholds(config: LdaSearchConfig, found: list[Candidate]) -> list[Candidate]:
    """``found`` plus the "refit" candidate at each moved threshold."""
    refit = next((c for c in found if c.name == "refit"), None)
    if refit is None:
        return found
    for k in range(-config.threshold_steps, config.threshold_steps + 1):
        t = round(0.5 + k * config.threshold_step, 6)
        if k != 0 and 0 < t < 1:
            found.append(cands_mod.with_threshold(refit, t))
    return found


def _decide(
    config: LdaSearchConfig, baseline: dict[str, Any], records: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, dict[str, bool]]:
    """``best`` and the flags: needed (baseline below target), significant, lifted."""
    best = choose_best(baseline, records, max_loss=config.max_performance_loss)
    base_ir = baseline["min_impact_ratio"]
    needed = base_ir is not None and base_ir < config.target_impact_ratio
    gain_lo = None if best is None else best["min_impact_ratio_gain_ci"][0]
    significant = bool(best is not None and needed and gain_lo is not None and gain_lo > 0)
    lifted = bool(
        best is not None and needed and best["min_impact_ratio"] >= config.target_impact_ratio
    )
    return best, {"needed": needed, "significant": significant, "lifted": lifted}


def _groups(
    baseline: dict[str, Any], best: dict[str, Any] | None, n: int, significant: bool
) -> list[dict[str, Any]]:
    """Rows for the policy: the model in use and the best alternative (which is judged)."""
    keys = ("performance", "performance_ci", "min_impact_ratio", "min_impact_ratio_ci")
    base_row = {"group": baseline["name"], "n": n, **{k: baseline[k] for k in keys}}
    judged = best or baseline
    row = {
        "group": judged["name"],
        "n": n,
        **{k: judged[k] for k in keys},
        "lda_min_impact_ratio": judged["min_impact_ratio"],
        "lda_min_impact_ratio_ci": judged["min_impact_ratio_ci"],
        "baseline_min_impact_ratio": baseline["min_impact_ratio"],
        "lda_significant": significant,
    }
    return [row] if best is None else [base_row, row]


def _result(
    config: LdaSearchConfig,
    base: Evaluation,
    holdout: Holdout,
    found: list[Candidate],
    outcome: SearchOutcome,
    x_hold: pd.DataFrame,
) -> ProbeResult:
    """Evaluate every candidate, decide, and build the entry and the saved best model."""
    evals = []
    scores: dict[int, np.ndarray] = {}  # by fitted pipeline: moved thresholds share one
    for c in found:
        if id(c.estimator) not in scores:
            scores[id(c.estimator)] = c.score(x_hold)
        score = scores[id(c.estimator)]
        sel = score >= c.threshold
        evals.append(evaluate(holdout, score=score, selected=sel, metric=config.metric))
    records = [_record(c, ev, base, config.confidence) for c, ev in zip(found, evals, strict=True)]
    baseline = {"name": BASELINE, **base.record}
    best, flags = _decide(config, baseline, records)
    best_full = (
        None if best is None else {**best, "groups": evals[records.index(best)].record["groups"]}
    )
    file_name = f"lda-best-{re.sub(r'[^A-Za-z0-9_.-]', '_', config.attribute)}.skops"
    summary = {
        "lda_found": bool(best is not None and (flags["lifted"] or flags["significant"])),
        "lda_needed": flags["needed"],
        "metric": config.metric,
        "max_performance_loss": config.max_performance_loss,
        "target_impact_ratio": config.target_impact_ratio,
        "baseline_min_impact_ratio": baseline["min_impact_ratio"],
        "best": None if best is None else best["name"],
        "best_min_impact_ratio": None if best is None else best["min_impact_ratio"],
        "best_performance_loss": None if best is None else best["performance_loss"],
        "candidates_tried": len(records),
        "recipes_fitted": outcome.tried,
        "recipes_skipped_by_budget": outcome.skipped,
        "recipes_failed": len(outcome.failed),
        "budget_exhausted": outcome.skipped > 0,
        "time_budget_s": config.time_budget_s,
        "best_model_file": None if best is None else file_name,
    }
    entry = ProbeEntry.model_validate(
        {
            "kind": "lda-search",
            "attribute": config.attribute,
            "groups": _groups(baseline, best, len(x_hold), flags["significant"]),
            "summary": summary,
            "baseline": baseline,
            "alternatives": records,
            "best": best_full,
            "frontier": pareto([baseline, *records]),
            "drivers": drivers(baseline, records)[:10],
            "failed": outcome.failed,
        }
    )
    artifacts: dict[str, bytes] = {}
    if best is not None:
        import skops.io as sio

        artifacts[file_name] = sio.dumps(found[records.index(best)].estimator)
    return ProbeResult(entries=[entry], artifacts=artifacts)
