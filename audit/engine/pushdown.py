"""Counts where the data lives: a ``dataset.source`` audit counted by one ``GROUP BY``.

A count-only audit (the same rule as sharding: decisions from a column, only
count-based probes, no scores or proxy) of ``dataset.source`` +
``dataset.query`` does not need the rows: the database groups them by the
protected columns, the label and the prediction, and only that table travels —
one row per distinct combination with its row count (and, with
``dataset.weight``, the sums of the weights and of their squares)::

    SELECT sex, race, qualified, advanced, COUNT(*), SUM(w), SUM(w * w)
    FROM (<dataset.query>) AS biasaudit_q GROUP BY sex, race, qualified, advanced

The grouped rows go through the same CSV text, reader, checks (``prepare``) and
counter as pulled rows, each counted with its multiplicity, and the counts become
one "shard" merged by :func:`audit.engine.sharding.results_from_parts`: the
results equal pulling the rows. Weighted sums are added by the database in its
own order: equal to the last digit when the weights' sums are exact in binary
floating point (integers, halves, ...), otherwise within rounding (~1e-15).

Anything the grouped query cannot judge exactly as the row pull would — a
missing label, prediction or weight, a weight that is not a number, a bin edge
over text, a misspelt column — falls back to pulling the rows, so the error a
user sees is the row-level one (naming the row). ``BIASAUDIT_SOURCE_PUSHDOWN=0``
always pulls the rows.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.engine import data as data_mod
from audit.engine.columns import count_columns, cut_bins
from audit.engine.dbsource import query_params, stream_to_csv
from audit.engine.sharding import MAX_LABEL_VALUES, results_from_parts, shardable
from audit.engine.spec import AuditSpec, parse_spec
from audit.errors import AuditInputError

N_COLUMN = "biasaudit_rows"
SQ_COLUMN = "biasaudit_weight_sq"


def pushable(spec: AuditSpec) -> bool:
    """True when every metric of a ``dataset.source`` audit comes from grouped counts."""
    return spec.dataset.source is not None and shardable(spec)


def _columns(spec: AuditSpec) -> list[str]:
    cols = count_columns(spec.dataset)  # protected, then dataset.strata
    for c in (spec.dataset.label, spec.dataset.prediction):
        if c and c not in cols:
            cols.append(c)
    return cols


def grouped_query(spec: AuditSpec, query: str, quote: Any) -> tuple[str, list[str]]:
    """The ``GROUP BY`` over ``query`` and the CSV header of its result.

    ``quote`` quotes an identifier for the source's dialect. The weight sum gets the
    weight column's own name, so the grouped CSV reads like the rows would."""
    cols = _columns(spec)
    keys = ", ".join(quote(c) for c in cols)
    select = [keys, f"COUNT(*) AS {N_COLUMN}"]
    header = [*cols, N_COLUMN]
    if spec.dataset.weight:
        w = quote(spec.dataset.weight)
        select += [f"SUM({w}) AS {quote(spec.dataset.weight)}", f"SUM({w} * {w}) AS {SQ_COLUMN}"]
        header += [spec.dataset.weight, SQ_COLUMN]
    sql = f"SELECT {', '.join(select)} FROM ({query}) AS biasaudit_q GROUP BY {keys}"
    return sql, header


def _fetch_grouped(
    spec: AuditSpec, dataset: dict[str, Any], url: str, out: Path, max_rows: int
) -> int:
    from sqlalchemy import create_engine

    query = str(dataset["query"]).strip().rstrip(";")
    engine = create_engine(url)
    try:
        quote = engine.dialect.identifier_preparer.quote
    finally:
        engine.dispose()
    sql, header = grouped_query(spec, query, quote)
    params = query_params(query, dataset)
    return stream_to_csv(
        dataset, url, sql, params, out, max_rows=max_rows, what="groups", columns=header
    )


def count_part(spec: AuditSpec, grouped: pd.DataFrame) -> dict[str, Any]:
    """The grouped table as one shard's part (counts, rows, unknowns, label values).

    Raises ``AuditInputError`` where the row pull must judge instead (see module doc)."""
    from probes.counts import count_groups

    n = pd.to_numeric(grouped[N_COLUMN]).to_numpy(dtype=np.int64)
    unknown = {}
    for col in spec.dataset.protected:
        raw = grouped[col]
        if col in spec.dataset.bins:
            raw = cut_bins(raw, spec.dataset.bins[col])
        unknown[col] = int(n[raw.isna().to_numpy()].sum())
    frame, y_true, y_pred, _, _ = data_mod.prepare(
        grouped, spec.dataset, need_prediction=True, max_levels=spec.policy.max_levels
    )
    assert y_pred is not None
    attrs = count_columns(spec.dataset)
    if spec.dataset.weight:
        sums = data_mod.frame_weight(frame, spec.dataset)
        squares = pd.to_numeric(grouped[SQ_COLUMN]).to_numpy(dtype=float)
        counts = count_groups(frame, attrs, y_pred=y_pred, y_true=y_true, weight=sums)
        sq = count_groups(frame, attrs, y_pred=y_pred, y_true=y_true, weight=squares)
        counts = replace(counts, sq=sq.table)
    else:  # each grouped row counts its rows: integer sums, exact in float64 below 2**53
        counts = count_groups(frame, attrs, y_pred=y_pred, y_true=y_true, weight=n.astype(float))
        counts = replace(counts, table=np.rint(counts.table).astype(np.int64), sq=None)
    label_values: list[str] = []
    if spec.dataset.label:
        for value in pd.unique(grouped[spec.dataset.label])[:MAX_LABEL_VALUES]:
            label_values.append(repr(data_mod.plain(value)))
    rows = int(n.sum())
    return {
        "index": 0,
        "start": 0,
        "stop": rows,
        "rows": rows,
        "counts": counts.to_dict(),
        "unknown": unknown,
        "label_values": label_values,
    }


def results_at_source(
    raw_spec: dict[str, Any], url: str, *, audit_id: str, max_groups: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The results of a ``dataset.source`` audit counted in the database, and what the
    manifest records (source, query, window, rows, ``pushdown: true``); None when the
    rows must be pulled instead (the audit is not count-only, or the grouped table
    holds something only the row-level checks can name)."""
    spec, _ = parse_spec(raw_spec)
    if not pushable(spec):
        return None
    dataset = dict(raw_spec["dataset"])
    query = str(dataset["query"]).strip().rstrip(";")
    with tempfile.TemporaryDirectory(prefix="biasaudit-pushdown-") as tmp:
        out = Path(tmp) / "groups.csv"
        try:
            _fetch_grouped(spec, dataset, url, out, max_groups)
        except AuditInputError as exc:
            if "no rows from source" in str(exc):
                raise
            return None  # a misspelt column, a weight SUM cannot add: the pull names it
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        grouped = data_mod.read_frame(spec.dataset, out)
    try:
        part = count_part(spec, grouped)
    except AuditInputError:
        return None
    params = query_params(query, dataset)
    results = results_from_parts(
        raw_spec,
        [part],
        audit_id=audit_id,
        dataset_info={"sha256": digest, "rows": part["rows"]},
    )
    source = {
        "source": dataset["source"],
        "query": query,
        "window_start": params.get("window_start"),
        "window_end": params.get("window_end"),
        "rows": part["rows"],
        "pushdown": True,
        "groups": len(grouped),
    }
    return results, source
