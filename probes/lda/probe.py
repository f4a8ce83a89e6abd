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
from typing import Any

import numpy as np
import pandas as pd

from probes.base import (
    Check,
    ModelAdapter,
    Probe,
    ProbeEntry,
    ProbeError,
    ProbeInput,
    ProbeResult,
    register_probe,
)
from probes.lda import candidates as cands_mod
from probes.lda import models as typed
from probes.lda.candidates import Candidate
from probes.lda.config import LdaSearchConfig
from probes.lda.evaluate import Evaluation, Holdout, evaluate, make_holdout, paired_gain_ci
from probes.lda.frontier import choose_best, drivers, loss, pareto
from probes.lda.rows import PROXY_ATTRIBUTE, Rows, rows_for
from probes.lda.search import SearchOutcome, run_search

BASELINE = "model in use"
MSG_NEEDS_SKLEARN = (
    "model.kind: lda-search refits the model in use, so it needs model.kind: sklearn "
    "(a fitted scikit-learn pipeline in a .skops file)"
)
MSG_NO_LABEL = "dataset.label: lda-search judges performance on the holdout; set dataset.label"
MSG_TRAIN_ID = (
    "probes[].train_id: an uploaded dataset's id, which only the service resolves; "
    "'biasaudit run' and run_audit take train (a file) or holdout_size"
)
MSG_NO_PROBA = "model.path: lda-search needs a classifier with predict_proba (a score)"

__all__ = ["LdaSearchConfig", "LdaSearchProbe"]


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
    upload_fields = ("train",)  # train_id: a dataset uploaded to the project
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
    if attr not in data.frame.columns and not (attr == PROXY_ATTRIBUTE and data.proxy is not None):
        raise ProbeError(
            f"probes[].attribute: column {attr!r} not found; protected columns are: "
            f"{', '.join(data.protected)}"
            + (" (or race_proxy with dataset.proxy)" if attr == PROXY_ATTRIBUTE else "")
        )
    if data.y_true is None or data.label is None:
        raise ProbeError(MSG_NO_LABEL)
    if config.train is None and config.holdout_size is None:  # train_id, not resolved
        raise ProbeError(MSG_TRAIN_ID)
    features = tuple(getattr(model, "features", ()))
    excluded = tuple(c for c in features if c in data.protected or c == attr)
    seed = data.seed if config.seed is None else config.seed
    rows = rows_for(
        data,
        attribute=attr,
        features=features,
        train=config.train,
        holdout_size=config.holdout_size,
        seed=seed,
    )
    if len(np.unique(rows.y_train)) < 2 or len(rows.holdout) == 0:
        raise ProbeError(
            f"probes[].train: the training rows need both outcomes of {data.label!r}, and the "
            "holdout needs rows"
        )
    t_eval = time.monotonic()  # predicting and evaluating one candidate
    hold_frame = data.frame.iloc[rows.holdout]
    sel, score = model.predict_with_score(hold_frame)  # type: ignore[attr-defined]
    if score is None:
        raise ProbeError(MSG_NO_PROBA)
    holdout = _holdout(config, data, rows, seed)
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
        x=_model_frame(rows.train, features),
        y=rows.y_train,
        sensitive=rows.sensitive_train,
        excluded=excluded,
        seed=seed,
        n_jobs=config.n_jobs,
        budget_s=_fit_budget(config, started, t_eval, len(specs)),
        progress=data.progress,
        should_cancel=data.should_cancel,
        sample_weight=rows.w_train,
    )
    found = _with_thresholds(config, list(outcome.candidates))
    result = _result(config, base, holdout, found, outcome, _model_frame(hold_frame, features))
    return _with_rows(result, config, rows)


def _with_rows(result: ProbeResult, config: LdaSearchConfig, rows: Rows) -> ProbeResult:
    """``summary`` says which rows trained and which were judged."""
    (entry,) = result.entries
    summary = {
        **entry.summary,
        "training": "split" if config.holdout_size is not None else "file",
        "training_rows": len(rows.train),
        "holdout_rows": len(rows.holdout),
        "proxy_groups": rows.membership is not None,
        "training_weights": _training_weights(config, rows),
    }
    return result.model_copy(update={"entries": [entry.model_copy(update={"summary": summary})]})


def _training_weights(config: LdaSearchConfig, rows: Rows) -> str:
    """How the candidates were trained: "none" (unweighted), "all" (every fit weighted),
    "except_reductions" (weights that are not integers: fairlearn's reductions unweighted)."""
    if rows.w_train is None:
        return "none"
    if config.reductions and cands_mod.repeats(rows.w_train) is None:
        return "except_reductions"
    return "all"


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


def _holdout(config: LdaSearchConfig, data: ProbeInput, rows: Rows, seed: int) -> Holdout:
    """The holdout's groups and bootstrap; weights and control group when the dataset sets them."""
    control = data.reference.get(config.attribute)  # dataset.reference
    weight = None if data.weight is None else np.asarray(data.weight, dtype=float)[rows.holdout]
    soft = None if rows.membership is None else (rows.levels or (), rows.membership)
    return make_holdout(
        y=np.asarray(data.y_true, dtype=bool)[rows.holdout],
        groups=rows.groups,
        membership=soft,
        n_boot=config.bootstrap,
        seed=seed,
        confidence=config.confidence,
        min_group_size=data.min_group_size,
        weights=weight,  # dataset.weight
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
