"""The predictions-only mode of counterfactual-tabular: SageMaker Clarify's kNN flip test.

Without a model (``model.kind: predictions``) no row can be re-scored, so we
compute SageMaker Clarify's flip test FT instead: each row of group ``d`` is
compared with the majority decision of its k nearest neighbours (k=5; 1 when
the rest has 9 rows or fewer, as Clarify) among the rows of all other groups,
on the standardized numeric and one-hot features (protected columns and columns
that repeat the label/prediction/score excluded). ``F+`` counts ``d`` rows not
selected whose neighbours were, ``F-`` the reverse; ``FT = (F+ - F-) / n_d`` as
in Clarify's documentation (positive: ``d`` disadvantaged; note smclarify's code
counts the opposite sign) and ``flip_rate = (F+ + F-) / n_d``. Each group is
compared with all others, so this mode has no reference group. Its ``p_value``
(McNemar exact on F+ vs F-) treats rows as independent; rows that share
neighbours are not quite, so read it as approximate.

Not a probe: :mod:`probes.counterfactual_tabular` calls it, and it registers nothing.
sklearn is imported inside the function that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from probes.base import ProbeEntry, ProbeError, ProbeInput
from probes.counterfactual_common import UNKNOWN, entry_extra
from probes.stats import mcnemar_exact, mean_with_ci, rate_with_ci
from probes.util import finite_or_none

if TYPE_CHECKING:
    from probes.counterfactual_tabular import CounterfactualTabularConfig

_MAX_ONE_HOT_LEVELS = 50


def _duplicates(col: pd.Series, arrays: list[np.ndarray]) -> bool:
    """True when ``col`` merely repeats the prediction/label/score (not a feature)."""
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        return False
    return any(np.array_equal(values, a.astype(float)) for a in arrays)


def knn_features(
    data: ProbeInput, config: CounterfactualTabularConfig
) -> tuple[np.ndarray, list[str]]:
    """Standardized numeric + one-hot matrix of the non-protected columns, and their names."""
    frame = data.frame
    arrays = [a for a in (data.y_pred, data.y_true, data.score) if a is not None]
    if config.features is not None:
        missing = [c for c in config.features if c not in frame.columns]
        if missing:
            raise ProbeError(
                f"probes[].features: column(s) {missing} not found; columns are: "
                f"{', '.join(map(str, frame.columns))}"
            )
        names = list(config.features)
    else:
        names = [
            c
            for c in frame.columns
            if c not in data.protected and not _duplicates(frame[c], arrays)
        ]
    blocks: list[np.ndarray] = []
    used: list[str] = []
    for c in names:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            x = np.where(np.isnan(x), np.nanmean(x) if (~np.isnan(x)).any() else 0.0, x)
            sd = x.std()
            if sd > 0:
                blocks.append(((x - x.mean()) / sd)[:, None])
                used.append(str(c))
        elif col.nunique(dropna=False) <= _MAX_ONE_HOT_LEVELS:
            dummies = pd.get_dummies(col.astype("string").fillna(UNKNOWN), dtype=float)
            onehot = dummies.to_numpy()
            sd = onehot.std(axis=0)
            keep = sd > 0
            if keep.any():
                blocks.append((onehot[:, keep] - onehot[:, keep].mean(0)) / sd[keep])
                used.append(str(c))
    if not blocks:
        raise ProbeError(
            "probes[].features: the kNN flip test (model.kind: predictions) needs at least one "
            "non-protected feature column that varies; list them in probes[].features"
        )
    return np.hstack(blocks), used


def knn_flip_test(
    data: ProbeInput, config: CounterfactualTabularConfig, values: list[str]
) -> ProbeEntry:
    """No-model mode: Clarify's FT, each group against its neighbours in all other groups."""
    if data.y_pred is None:
        raise ProbeError(
            "probes[].kind: counterfactual-tabular needs a model (model.kind: sklearn) or "
            "the model's decisions (dataset.prediction) for the kNN flip test"
        )
    x, used = knn_features(data, config)
    orig = data.frame[config.attribute].astype(str).to_numpy()
    groups = [_group_row(data, config, x, orig == v, v) for v in values]
    summary = {
        "mode": "knn",
        "method": "SageMaker Clarify flip test (FT), standardized features",
        "neighbors": config.neighbors,
        "features": used,
        "p_value_test": "mcnemar exact on F+ vs F-",
    }
    return ProbeEntry(
        kind="counterfactual-tabular",
        attribute=config.attribute,
        groups=groups,
        summary=summary,
        **entry_extra(None, [], [], values),
    )


def _group_row(
    data: ProbeInput, config: CounterfactualTabularConfig, x: np.ndarray, d: np.ndarray, v: str
) -> dict[str, Any]:
    """Group ``v`` (rows ``d``): each row against the majority of its k nearest others."""
    from sklearn.neighbors import NearestNeighbors

    conf = config.confidence
    y = np.asarray(data.y_pred, dtype=bool)
    n_d, n_a = int(d.sum()), int((~d).sum())
    k = min(config.neighbors if n_a > 9 else 1, n_a)
    g: dict[str, Any] = {
        "group": v,
        "n": n_d,
        "insufficient_data": bool(n_d < data.min_group_size),
    }
    if n_d == 0 or n_a == 0:
        return {
            **g,
            "flip_rate": None,
            "flip_rate_ci": None,
            "FT": None,
            "mean_score": None,
            "score_gap": None,
            "p_value": None,
        }
    nn = NearestNeighbors(n_neighbors=k).fit(x[~d])
    neigh = nn.kneighbors(x[d], return_distance=False)
    # Majority vote of the neighbours' decisions; a tie counts as not selected,
    # as KNeighborsClassifier (Clarify) resolves it.
    vote = y[~d][neigh].mean(axis=1) > 0.5
    own = y[d]
    f_plus = int((~own & vote).sum())
    f_minus = int((own & ~vote).sum())
    flip, flip_ci = rate_with_ci(f_plus + f_minus, n_d, conf)
    g.update(
        flip_rate=finite_or_none(flip),
        flip_rate_ci=flip_ci,
        FT=(f_plus - f_minus) / n_d,
        flips_to_selected=f_plus,
        flips_to_not_selected=f_minus,
        p_value=mcnemar_exact(f_plus, f_minus),
        neighbors=k,
    )
    if data.score is not None:
        s = np.asarray(data.score, dtype=float)
        mean, mean_ci = mean_with_ci(s[d], conf)
        gap, gap_ci = mean_with_ci(s[d] - s[~d][neigh].mean(axis=1), conf)
        g.update(
            mean_score=finite_or_none(mean),
            mean_score_ci=mean_ci,
            score_gap=finite_or_none(gap),
            score_gap_ci=gap_ci,
        )
    else:
        g.update(mean_score=None, mean_score_ci=None, score_gap=None, score_gap_ci=None)
    return g
