"""``dataset.proxy``: BISG / BIFSG posteriors for every row of an in-memory dataset.

The census tables are read from the data folder (``biasaudit data fetch --census``);
nothing is downloaded while an audit runs: missing tables are an input error naming
the command to run. A file above ``BIASAUDIT_CHUNK_BYTES`` is read in chunks
(:func:`chunked_proxy`).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from audit.engine import data as data_mod
from audit.engine.columns import count_columns
from audit.engine.reader import header, read_chunks
from audit.engine.spec import AuditSpec, DatasetSpec
from audit.errors import AuditInputError
from probes.base import ProbeInput
from probes.counts import GroupCounts
from probes.proxy import ProxyResult, bifsg, bisg, concat_results


def proxy_posteriors(frame: pd.DataFrame, spec: DatasetSpec) -> ProxyResult | None:
    """The proxy's posteriors (one row per frame row), or None without ``dataset.proxy``."""
    proxy = spec.proxy
    if proxy is None:
        return None
    from audit.sources.census import CensusDataError, load_tables

    level = "tract" if proxy.tract else "zcta"
    try:
        tables = load_tables(levels=(level,), first_names=proxy.method == "bifsg")
    except CensusDataError as exc:
        raise AuditInputError(f"dataset.proxy: {exc}", field="dataset.proxy") from None
    geo_col = proxy.tract or proxy.zcta
    geography = frame[geo_col] if geo_col else None
    if proxy.method == "bifsg" and proxy.first_name:
        return bifsg(
            tables,
            surname=frame[proxy.surname],
            first_name=frame[proxy.first_name],
            geography=geography,
            level=level,
        )
    return bisg(tables, surname=frame[proxy.surname], geography=geography, level=level)


def chunked_proxy(
    spec: AuditSpec, path: Path, *, chunk_rows: int
) -> tuple[GroupCounts | None, ProbeInput, int, dict[str, int]]:
    """A file too large for memory, with ``dataset.proxy``: read in chunks, keep little.

    Each chunk gives its protected-column counts (they add) and its rows' posteriors
    (computed row by row, so the chunks' posteriors are the whole file's). Only the
    posteriors, decisions, labels and weights are kept (about 60 bytes a row, not the
    names): the EM fit behind the multiple imputations needs every row's posterior at
    each of its iterations, so they cannot be reduced to counts. The imputations then
    run on exactly the arrays an in-memory run has, and give the same result.
    Returns (merged counts or None without protected columns, the proxy's probe
    input, rows, unknown counts per protected column).
    """
    from probes.counts import count_groups

    ds = spec.dataset
    total: GroupCounts | None = None
    parts: list[ProxyResult] = []
    y_pred: list[np.ndarray] = []
    y_true: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    rows = 0
    unknown = {c: 0 for c in ds.protected}
    data_mod.check_columns(ds, path, header(ds, path))
    names = [c for _, c in ds.proxy.columns()] if ds.proxy else []
    chunks = read_chunks(ds, path, chunk_rows=chunk_rows, extra=names)
    with closing(chunks):
        for raw in chunks:
            frame, truth, pred, _, unk = data_mod.prepare(
                raw, ds, need_prediction=True, row_offset=rows, max_levels=spec.policy.max_levels
            )
            assert pred is not None
            weight = data_mod.frame_weight(frame, ds)
            if ds.protected:
                part = count_groups(
                    frame, count_columns(ds), y_pred=pred, y_true=truth, weight=weight
                )
                total = part if total is None else total + part
                data_mod.refuse_levels(total, ds, spec.policy.max_levels, partial=True)
            posteriors = proxy_posteriors(frame, ds)
            assert posteriors is not None
            parts.append(posteriors)
            y_pred.append(np.asarray(pred, dtype=bool))
            if truth is not None:
                y_true.append(np.asarray(truth, dtype=bool))
            if weight is not None:
                weights.append(np.asarray(weight, dtype=float))
            rows += len(frame)
            for k, v in unk.items():
                unknown[k] += v
    if not parts:
        raise AuditInputError(f"dataset.path: {path.name} has no rows", field="dataset.path")
    pinput = ProbeInput(
        frame=pd.DataFrame(),
        protected=tuple(ds.protected),
        y_pred=np.concatenate(y_pred),
        y_true=np.concatenate(y_true) if y_true else None,
        seed=spec.seed,
        min_group_size=spec.policy.min_group_size,
        unknown_label=ds.unknown_label,
        weight=np.concatenate(weights) if weights else None,
        reference={k: str(v) for k, v in ds.reference.items()},
        proxy=concat_results(parts),
    )
    return total, pinput, rows, unknown
