"""The rows the search fits on and the rows it judges on, and the groups of each.

- **Training rows** come from ``train`` (a file), or from the audited rows when
  ``holdout_size`` splits them (:func:`split_rows`: seeded, stratified by the label
  and every protected column, so each stratum keeps its share in both parts).
- **Holdout rows** are the audited rows (all of them with a ``train`` file, the
  held-out part with a split). The model in use and every candidate are judged on
  them only.
- **Groups**: the attribute's levels (hard membership), or, for the race proxy
  (``race_proxy`` with ``dataset.proxy``), each row's posterior probabilities
  (soft membership: every rate is probability-weighted). Reductions, which need
  one group per training row, get one seeded draw from the posteriors.
- **Training weights** (``dataset.weight``): the weights of the training rows of a
  split, or the train file's column of that name (validated like the dataset's);
  a train file without it trains unweighted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probes.base import ProbeError, ProbeInput

PROXY_ATTRIBUTE = "race_proxy"  # as the demographic probe names the proxy's groups
MSG_TRAIN_COLUMNS = "probes[].train: {path} lacks column(s) {missing}; it needs {needed}"
MSG_PROXY_MISSING = (
    "probes[].attribute: race_proxy needs dataset.proxy (surname and geography columns) "
    "to estimate each row's race"
)
MSG_TRAIN_WEIGHTS = (
    "probes[].train: column {column!r} (dataset.weight) has {bad} missing, negative or "
    "non-finite value(s) in {path}; weights must be finite numbers >= 0"
)
MSG_PROXY_TRAIN = (
    "probes[].train: race_proxy with a train file needs dataset.proxy applied to it; "
    "use holdout_size to split the audited rows instead"
)


@dataclass(frozen=True)
class Rows:
    """Training frame and outcomes, holdout positions, and the groups on both sides."""

    train: pd.DataFrame
    y_train: np.ndarray  # int 0/1: favorable outcome
    sensitive_train: np.ndarray  # one group per training row (for the reductions)
    holdout: np.ndarray  # positions of the holdout rows in the audited frame
    levels: tuple[str, ...] | None  # soft groups: the proxy's categories, else None
    membership: np.ndarray | None  # (holdout rows, levels) posteriors, or None
    groups: pd.Series | None  # hard groups of the holdout rows, or None
    w_train: np.ndarray | None = None  # training rows' weights (dataset.weight), or None


def split_rows(strata: pd.DataFrame, *, holdout_size: float, seed: int) -> np.ndarray:
    """A boolean mask: True for the holdout rows.

    Rows are shuffled with ``seed``; in each stratum (one combination of the
    columns of ``strata``) the first ``round(holdout_size * n)`` shuffled rows are
    held out, so every stratum keeps its share on both sides; a stratum of one row
    goes to the holdout when its rounded share is 1. The same seed gives the same
    split whatever the machine.
    """
    n = len(strata)
    order = np.random.default_rng(seed).permutation(n)
    if n == 0:
        return np.zeros(0, dtype=bool)
    code = strata.astype(str).groupby(list(strata.columns), sort=True).ngroup().to_numpy()
    shuffled = code[order]  # the stratum of each row, in shuffled order
    by_stratum = np.argsort(shuffled, kind="stable")  # shuffled order kept within a stratum
    starts = np.flatnonzero(np.r_[True, shuffled[by_stratum][1:] != shuffled[by_stratum][:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.empty(n, dtype=np.int64)  # place of each shuffled row within its stratum
    rank[by_stratum] = np.arange(n) - np.repeat(starts, sizes)
    size_of = np.empty(n, dtype=np.int64)
    size_of[by_stratum] = np.repeat(sizes, sizes)
    mask = np.zeros(n, dtype=bool)
    mask[order] = rank < np.floor(holdout_size * size_of + 0.5)
    return mask


def read_train(path_text: str, base_dir: Path | None, needed: list[str]) -> pd.DataFrame:
    """The ``train`` file (CSV or Parquet), with every column in ``needed``."""
    path = Path(path_text)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise ProbeError(f"probes[].train: file not found: {path_text} (CSV or Parquet)")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ProbeError(f"probes[].train: cannot read {path_text}: {exc}") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ProbeError(MSG_TRAIN_COLUMNS.format(path=path_text, missing=missing, needed=needed))
    return frame


def _train_weights(frame: pd.DataFrame, column: str | None, path: str) -> np.ndarray | None:
    """The train file's ``dataset.weight`` column (finite, >= 0), or None without one."""
    if column is None or column not in frame.columns:
        return None
    w = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = int((~np.isfinite(w) | (w < 0)).sum())
    if bad:
        raise ProbeError(MSG_TRAIN_WEIGHTS.format(column=column, bad=bad, path=path))
    return w


def _posteriors(proxy: Any) -> tuple[tuple[str, ...], np.ndarray]:
    from probes.proxy import RACES

    return tuple(RACES), proxy.posteriors[list(RACES)].to_numpy(dtype=float)


def _draw(post: np.ndarray, levels: tuple[str, ...], seed: int) -> np.ndarray:
    """One seeded draw of a group per row from its posterior (for the reductions)."""
    from probes.proxy import draw_races

    codes = draw_races(post, m=1, seed=seed)[0]
    return np.asarray(levels, dtype=object)[codes]


def _favorable(values: Any, favorable: Any) -> np.ndarray:
    from probes.util import canonical_label

    fav = canonical_label(favorable)
    return np.array([canonical_label(v) == fav for v in values], dtype=int)


def _hard(values: pd.Series) -> np.ndarray:
    return values.astype(object).where(values.notna(), "unknown").astype(str).to_numpy()


def rows_for(
    data: ProbeInput,
    *,
    attribute: str,
    features: tuple[str, ...],
    train: str | None,
    holdout_size: float | None,
    seed: int,
) -> Rows:
    """Training and holdout rows for ``attribute`` (a column, or ``race_proxy``)."""
    proxied = attribute == PROXY_ATTRIBUTE and attribute not in data.frame.columns
    post: np.ndarray | None = None
    levels: tuple[str, ...] | None = None
    if proxied:
        if data.proxy is None:
            raise ProbeError(MSG_PROXY_MISSING)
        levels, post = _posteriors(data.proxy)
    if holdout_size is not None:
        strata = pd.DataFrame({"__label": np.asarray(data.y_true, dtype=bool)})
        for c in data.protected:
            strata[c] = data.frame[c].to_numpy()
        if post is not None:  # the most likely race stands in for the missing column
            strata[PROXY_ATTRIBUTE] = post.argmax(axis=1)
        hold_mask = split_rows(strata, holdout_size=holdout_size, seed=seed)
        holdout = np.flatnonzero(hold_mask)
        frame = data.frame.iloc[np.flatnonzero(~hold_mask)]
        y_train = np.asarray(data.y_true, dtype=int)[~hold_mask]
        train_post = None if post is None else post[~hold_mask]
        w_train = None if data.weight is None else np.asarray(data.weight)[~hold_mask]
    else:
        assert train is not None and data.label is not None
        needed = [*features, data.label, *([] if proxied else [attribute])]
        frame = read_train(train, data.base_dir, needed)
        holdout = np.arange(len(data.frame))
        y_train = _favorable(frame[data.label], data.favorable_label)
        train_post = None
        w_train = _train_weights(frame, data.weight_column, train)
        if proxied:
            if data.proxy_of is None:
                raise ProbeError(MSG_PROXY_TRAIN)
            train_post = _posteriors(data.proxy_of(frame))[1]
    if post is not None and train_post is not None and levels is not None:
        sensitive = _draw(train_post, levels, seed)
        return Rows(frame, y_train, sensitive, holdout, levels, post[holdout], None, w_train)
    groups = data.frame[attribute].iloc[holdout].astype(str)
    return Rows(frame, y_train, _hard(frame[attribute]), holdout, None, None, groups, w_train)
