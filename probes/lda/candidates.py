"""Candidate models for the less-discriminatory-alternative search.

Every candidate is a fitted scikit-learn pipeline whose first step,
``neutralize``, replaces the protected columns (and, for a "drop" candidate, the
dropped feature) with a constant before anything else sees them: the
candidate's decisions cannot depend on them, whatever the rest of the pipeline
does with its inputs. The pipeline is plain scikit-learn (a ``ColumnTransformer``
with ``FunctionTransformer(numpy.zeros_like)``), so it saves with skops and
loads with ``model.kind: sklearn`` for a follow-up audit.

Families, in the order they are tried (cheap and informative first, so a time
budget keeps them):

- ``refit``: the model in use, cloned and refitted as is;
- ``drop``: one feature neutralized (its gain shows which features drive the disparity);
- ``refit:seed=k``: refitted with other seeds;
- ``hyperparameter``: one hyperparameter moved to a neighbour value;
- ``reduction``: fairlearn's ``GridSearch`` (every grid predictor) and
  ``ExponentiatedGradient`` (the predictor of highest weight: deterministic);
- ``threshold``: one decision threshold for everyone, applied to ``refit``.

The protected attribute is used by the reductions in training only.

Training weights (``dataset.weight``) go to every fit as ``sample_weight``: to each
step of the pipeline whose ``fit`` takes it (the final estimator must). fairlearn's
reductions take no row weights (their ``sample_weight_name`` is how *they* pass
weights to the estimator), so integer weights repeat the rows they weigh, which is
what an integer weight means; other weights leave the reductions unweighted
(:func:`repeats` says which; the probe's summary says so).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

EG_MAX_ITER = 30  # ExponentiatedGradient iterations (each one fit)
REPEAT_LIMIT = 20  # integer weights repeat rows for the reductions up to 20x the rows
MSG_NO_SAMPLE_WEIGHT = (
    "{name}.fit takes no sample_weight, so dataset.weight cannot weigh its training; "
    "use an estimator that does (e.g. LogisticRegression) or drop dataset.weight"
)
Family = Literal["refit", "hyperparameter", "drop", "reduction", "threshold"]

#: hyperparameters moved to neighbour values: multiplicative steps (floats) or +/- steps
_SCALED = ("C", "alpha", "learning_rate", "l2_regularization")
_COUNTS = ("n_estimators", "max_leaf_nodes", "min_samples_leaf")
_DEPTHS = ("max_depth",)


@dataclass(frozen=True)
class CandidateSpec:
    """What to fit: a recipe, picklable for joblib workers."""

    name: str
    family: Family
    params: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    reduction: dict[str, Any] | None = None
    cost: int = 1  # model fits it takes (for the time budget)


@dataclass(frozen=True)
class Candidate:
    """A fitted alternative: a pipeline that neutralizes its excluded columns, and a threshold."""

    name: str
    family: Family
    estimator: Any
    features: tuple[str, ...]
    threshold: float = 0.5
    params: dict[str, Any] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the favorable class (label 1) for each row of ``frame``."""
        proba = self.estimator.predict_proba(frame.loc[:, list(self.features)])
        classes = list(self.estimator.classes_)
        return np.asarray(proba, dtype=float)[:, classes.index(1)]

    def decide(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(selected, score): selected where the score reaches the threshold."""
        s = self.score(frame)
        return s >= self.threshold, s


def neutralizer(columns: tuple[str, ...]) -> Any:
    """A transformer that sets ``columns`` to a constant (0) and passes the rest through."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer

    zero = FunctionTransformer(np.zeros_like, feature_names_out="one-to-one")
    return ColumnTransformer(
        [("constant", zero, list(columns))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def neutralized(estimator: Any, columns: tuple[str, ...], step: Any = None) -> Any:
    """``estimator`` behind a first step (``step`` or a new one) neutralizing ``columns``."""
    from sklearn.pipeline import Pipeline

    if not columns:
        return estimator
    return Pipeline([("neutralize", step or neutralizer(columns)), ("model", estimator)])


def _neighbours(name: str, value: Any) -> list[Any]:
    leaf = name.rsplit("__", 1)[-1]
    if isinstance(value, bool) or value is None and leaf not in _DEPTHS:
        return []
    if leaf in _SCALED and isinstance(value, (int, float)) and value > 0:
        return [float(value) * 0.5, float(value) * 2.0]
    if leaf in _COUNTS and isinstance(value, int) and value > 1:
        return [max(2 if leaf == "max_leaf_nodes" else 1, value // 2), value * 2]
    if leaf in _DEPTHS and isinstance(value, int) and value > 1:
        return [value - 1, value + 1]
    return []


def plan(
    model: Any,
    *,
    features: tuple[str, ...],
    excluded: tuple[str, ...],
    seeds: int,
    hyperparameters: bool,
    drop_features: bool,
    reductions: bool,
    bounds: tuple[float, ...],
    grid_size: int,
) -> list[CandidateSpec]:
    """The candidates to fit, in the order they are tried."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    seeded = [k for k in params if k == "random_state" or k.endswith("__random_state")]
    out = [CandidateSpec("refit", "refit")]
    if drop_features:
        for f in features:
            if f not in excluded:
                out.append(CandidateSpec(f"drop:{f}", "drop", drop=(f,)))
    for s in range(1, seeds + 1 if seeded else 1):
        out.append(CandidateSpec(f"refit:seed={s}", "refit", {k: s for k in seeded}))
    if hyperparameters:
        for k in sorted(params):
            for v in _neighbours(k, params[k]):
                out.append(CandidateSpec(f"{k}={v:g}", "hyperparameter", {k: v}))
    if reductions:
        for c in ("demographic_parity", "equalized_odds"):
            grid: dict[str, Any] = {
                "method": "grid_search",
                "constraint": c,
                "grid_size": grid_size,
            }
            out.append(
                CandidateSpec(f"grid_search:{c}", "reduction", reduction=grid, cost=grid_size + 1)
            )
        for c in ("demographic_parity", "true_positive_rate_parity"):
            for b in bounds:
                red: dict[str, Any] = {
                    "method": "exponentiated_gradient",
                    "constraint": c,
                    "bound": b,
                }
                name = f"exponentiated_gradient:{c}:{b:g}"
                out.append(CandidateSpec(name, "reduction", reduction=red, cost=EG_MAX_ITER))
    return out


def _constraint(name: str, bound: float | None) -> Any:
    from fairlearn.reductions import DemographicParity, EqualizedOdds, TruePositiveRateParity

    cls = {
        "demographic_parity": DemographicParity,
        "equalized_odds": EqualizedOdds,
        "true_positive_rate_parity": TruePositiveRateParity,
    }[name]
    return cls() if bound is None else cls(difference_bound=bound)


def _split(estimator: Any) -> tuple[Any, Any]:
    """(preprocessing, final classifier) of a clone of ``estimator``.

    A bare classifier gets ``numpy.asarray`` as its preprocessing: the reductions fit
    it on an array, so it must predict on one.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
        return Pipeline(estimator.steps[:-1]), estimator.steps[-1][1]
    return FunctionTransformer(np.asarray), estimator


def repeats(weights: np.ndarray | None) -> np.ndarray | None:
    """Integer ``weights`` as how many times each row counts (for the reductions), or None
    when they are not integers or would repeat more than ``REPEAT_LIMIT`` x the rows."""
    if weights is None or len(weights) == 0:
        return None
    counts = np.rint(weights)
    if not np.array_equal(counts, weights) or counts.sum() > REPEAT_LIMIT * len(weights):
        return None
    return counts.astype(np.int64)


def _step_weights(steps: list[tuple[str, Any]], weights: Any, prefix: str) -> dict[str, Any]:
    """``name__sample_weight`` for each transformer step whose ``fit`` takes it."""
    from sklearn.utils.validation import has_fit_parameter

    return {
        f"{prefix}{name}__sample_weight": weights
        for name, step in steps
        if step is not None and step != "passthrough" and has_fit_parameter(step, "sample_weight")
    }


def weight_params(estimator: Any, weights: np.ndarray | None, prefix: str = "") -> dict[str, Any]:
    """``fit`` keyword arguments giving ``weights`` to every step that takes
    ``sample_weight`` (nested pipelines: ``step__sample_weight``); {} without weights.
    Raises ValueError when the final estimator takes none."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import has_fit_parameter

    if weights is None:
        return {}
    if isinstance(estimator, Pipeline):
        (name, last), steps = estimator.steps[-1], estimator.steps[:-1]
        return {
            **_step_weights(steps, weights, prefix),
            **weight_params(last, weights, f"{prefix}{name}__"),
        }
    if not has_fit_parameter(estimator, "sample_weight"):
        raise ValueError(MSG_NO_SAMPLE_WEIGHT.format(name=type(estimator).__name__))
    return {f"{prefix}sample_weight": weights}


def _fit_reduction(
    spec: CandidateSpec,
    base: Any,
    x: pd.DataFrame,
    y: np.ndarray,
    s: np.ndarray,
    w: np.ndarray | None,
) -> list[tuple[str, Any]]:
    """Reductions on the pipeline's final step; deterministic predictors with the preprocessing."""
    from fairlearn.reductions import ExponentiatedGradient, GridSearch
    from sklearn.pipeline import Pipeline

    assert spec.reduction is not None
    red = spec.reduction
    pre, final = _split(base)
    steps = pre.steps if isinstance(pre, Pipeline) else []
    z = pre.fit_transform(x, y, **({} if w is None else _step_weights(steps, w, "")))
    if hasattr(z, "toarray"):
        z = z.toarray()
    z = np.asarray(z, dtype=float)
    counts = repeats(w)
    if counts is not None:  # an integer weight is that many rows
        z, y, s = np.repeat(z, counts, axis=0), np.repeat(y, counts), np.repeat(s, counts)
    bound = red.get("bound")
    constraint = _constraint(red["constraint"], bound)

    def wrap(p: Any) -> Any:
        return Pipeline([("preprocess", pre), ("classifier", p)])

    with warnings.catch_warnings():
        # fairlearn 0.15 expands Series through .at and mixes dtypes (deprecated in pandas 3)
        warnings.filterwarnings(
            "ignore", category=getattr(pd.errors, "Pandas4Warning", FutureWarning)
        )
        if red["method"] == "grid_search":
            gs = GridSearch(final, constraints=constraint, grid_size=int(red["grid_size"]))
            gs.fit(z, y, sensitive_features=s)
            return [(f"{spec.name}:{i}", wrap(p)) for i, p in enumerate(gs.predictors_)]
        eg = ExponentiatedGradient(final, constraints=constraint, max_iter=EG_MAX_ITER)
        eg.fit(z, y, sensitive_features=s)
    top = int(np.argmax(np.asarray(eg.weights_)))
    return [(spec.name, wrap(eg.predictors_[top]))]


def fit(
    spec: CandidateSpec,
    model: Any,
    *,
    x: pd.DataFrame,
    y: np.ndarray,
    sensitive: np.ndarray,
    excluded: tuple[str, ...],
    seed: int,
    sample_weight: np.ndarray | None = None,
) -> list[Candidate]:
    """Fit one recipe on the training rows (may give several candidates: a grid), each
    row weighed by ``sample_weight`` when given."""
    from sklearn.base import clone

    features = tuple(x.columns)
    cols = tuple(c for c in features if c in excluded or c in spec.drop)
    base = clone(model)
    if spec.params:
        base.set_params(**spec.params)
    if spec.family == "reduction":
        step = neutralizer(cols) if cols else None
        xn = x if step is None else step.fit_transform(x)
        fitted = _fit_reduction(spec, base, xn, y, sensitive, sample_weight)
        return [
            Candidate(name, "reduction", neutralized(est, cols, step), features, dropped=spec.drop)
            for name, est in fitted
        ]
    est = neutralized(base, cols)
    est.fit(x, y, **weight_params(est, sample_weight))
    return [Candidate(spec.name, spec.family, est, features, params=spec.params, dropped=spec.drop)]


def with_threshold(c: Candidate, threshold: float) -> Candidate:
    """``c`` deciding at another threshold (same fitted pipeline)."""
    return Candidate(
        f"threshold={threshold:.3f}", "threshold", c.estimator, c.features, threshold=threshold
    )
