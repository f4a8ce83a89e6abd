"""Split a large count-only audit into row shards, count each shard, merge the counts.

This is how an audit outgrows one machine: the worker that claims a large
audit plans shards (row ranges), a Celery chord runs :func:`count_shard` on
each in parallel on any number of workers, and :func:`results_from_parts`
merges the per-shard :class:`~probes.counts.GroupCounts` by addition and
builds the same results.json document that :func:`audit.engine.compute_results`
gives for the whole file (ids and times aside) — group metrics come from
counts, and counts add. It is the multi-process form of the engine's
in-process chunked path (``audit.engine._chunked_entries``).

Only audits whose every metric reduces to counts are sharded: decisions from
a column (``model.kind: predictions``), only count-based probes (``from_counts``) over
protected columns, no ``dataset.score`` (AUC and calibration need all scores); a
``dataset.strata`` column is counted beside the protected ones (CDDPL from counts).
No ``dataset.proxy``: its multiple imputations rest on an EM fit over every row's
posterior, which does not reduce to counts; such an audit runs in one worker, in
chunks above ``BIASAUDIT_CHUNK_BYTES``. Everything here is pure (no Celery, no
database): shard results are plain JSON so they travel through the result backend.

>>> plan_shards(rows=10, shard_rows=4, max_shards=8)
[Shard(index=0, start=0, stop=4), Shard(index=1, start=4, stop=7), Shard(index=2, start=7, stop=10)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from audit.engine import data as data_mod
from audit.engine.columns import count_columns, text_columns
from audit.engine.spec import AuditSpec, parse_spec, validate_probe_configs
from audit.errors import (
    MSG_FAVORABLE_NOT_IN_LABELS,
    MSG_ONE_GROUP,
    AuditCancelled,
    AuditInputError,
)
from probes.base import get_probe

MAX_LABEL_VALUES = 10  # label values kept per shard for the "favorable label not seen" message


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of the dataset (0-based, header excluded)."""

    index: int
    start: int
    stop: int


def shardable(spec: AuditSpec) -> bool:
    """True when every metric of ``spec`` is derived from confusion counts alone."""
    if spec.model.kind != "predictions" or spec.dataset.score:
        return False
    if spec.dataset.proxy is not None:
        # the imputations' EM fit needs every row's posterior at each iteration: shard
        # counts cannot carry that, so one worker runs it (chunked above chunk_bytes)
        return False
    from audit.engine.run import count_only

    configs = validate_probe_configs(spec)
    if not count_only(configs):
        return False
    protected = set(spec.dataset.protected)
    return all(
        set(get_probe(c.kind).count_attributes(c, spec.dataset.protected)) <= protected
        for c in configs
    )


def is_parquet(spec: AuditSpec, path: Path) -> bool:
    """The file format, as the engine decides it (``dataset.format`` or the extension)."""
    if spec.dataset.format:
        return spec.dataset.format == "parquet"
    return path.name.lower().endswith((".parquet", ".pq"))


def count_rows(spec: AuditSpec, path: Path, *, chunk_rows: int = 1_000_000) -> int:
    """Data rows in the file (Parquet: from the footer; CSV: one pass over one column)."""
    if is_parquet(spec, path):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    column = spec.dataset.protected[0]
    return sum(len(c) for c in pd.read_csv(path, usecols=[column], chunksize=chunk_rows))


def should_shard(
    spec: AuditSpec, path: Path, *, rows: int | None, threshold_rows: int, threshold_bytes: int
) -> bool:
    """Shard when the audit is count-only and the file is above either size threshold."""
    if not shardable(spec):
        return False
    big_rows = rows is not None and rows > threshold_rows
    return big_rows or path.stat().st_size > threshold_bytes


def plan_shards(*, rows: int, shard_rows: int, max_shards: int) -> list[Shard]:
    """Split ``rows`` rows into at most ``max_shards`` near-equal ranges of ~``shard_rows``."""
    if rows <= 0:
        return []
    count = max(1, min(max_shards, math.ceil(rows / shard_rows)))
    bounds = [round(i * rows / count) for i in range(count + 1)]
    return [Shard(i, bounds[i], bounds[i + 1]) for i in range(count)]


def plan_parquet_shards(path: Path, *, shard_rows: int, max_shards: int) -> list[Shard]:
    """Shards aligned to Parquet row groups (a shard reads whole row groups only)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    total = sum(sizes)
    target = max(shard_rows, math.ceil(total / max_shards)) if total else shard_rows
    shards: list[Shard] = []
    start = offset = 0
    for size in sizes:
        offset += size
        if offset - start >= target:
            shards.append(Shard(len(shards), start, offset))
            start = offset
    if offset > start:
        shards.append(Shard(len(shards), start, offset))
    return shards


def plan_for(
    spec: AuditSpec, path: Path, *, rows: int | None, shard_rows: int, max_shards: int
) -> list[Shard]:
    """The shards of ``path`` (row counts taken from ``rows`` when known)."""
    if is_parquet(spec, path):
        return plan_parquet_shards(path, shard_rows=shard_rows, max_shards=max_shards)
    total = rows if rows is not None else count_rows(spec, path)
    return plan_shards(rows=total, shard_rows=shard_rows, max_shards=max_shards)


def _columns(spec: AuditSpec) -> list[str]:
    cols = count_columns(spec.dataset)
    for c in (spec.dataset.label, spec.dataset.prediction, spec.dataset.weight):
        if c and c not in cols:
            cols.append(c)
    return cols


def _read_rows(
    spec: AuditSpec, path: Path, start: int, stop: int, *, chunk_rows: int
) -> Generator[pd.DataFrame, None, None]:
    """Rows ``[start, stop)`` in chunks of at most ``chunk_rows``, only the needed columns."""
    cols = _columns(spec)
    if is_parquet(spec, path):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        groups, offset = [], 0
        for i in range(pf.metadata.num_row_groups):
            if start <= offset < stop:
                groups.append(i)
            offset += pf.metadata.row_group(i).num_rows
        if groups:
            for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=cols):
                yield batch.to_pandas()
        return
    # Protected columns are read as text so every shard sees the same group names
    # whatever the other values of its rows (no per-chunk int/float inference).
    with pd.read_csv(
        path,
        usecols=cols,
        skiprows=range(1, start + 1),
        nrows=stop - start,
        chunksize=chunk_rows,
        dtype={c: "string" for c in text_columns(spec.dataset)},
        low_memory=False,
    ) as reader:
        yield from reader


def count_shard(
    spec: AuditSpec,
    path: Path,
    shard: Shard,
    *,
    chunk_rows: int = 200_000,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Confusion counts of one shard, as JSON: ``{"index", "rows", "counts", "unknown", ...}``.

    Input errors (a missing prediction, a bad label) raise ``AuditInputError``
    with the row number in the whole file; a cancel request between chunks
    raises ``AuditCancelled``.
    """
    from probes.counts import count_groups

    data_mod.check_columns(spec.dataset, path, data_mod.header(spec.dataset, path))
    total = None
    rows = 0
    unknown = {c: 0 for c in spec.dataset.protected}
    label_values: list[str] = []
    offset = shard.start
    chunks = _read_rows(spec, path, shard.start, shard.stop, chunk_rows=chunk_rows)
    with closing(chunks):  # the file is closed also when a chunk is refused
        for raw in chunks:
            if should_cancel is not None and should_cancel():
                raise AuditCancelled("audit cancelled")
            frame, y_true, y_pred, _, unk = data_mod.prepare(
                raw,
                spec.dataset,
                need_prediction=True,
                row_offset=offset,
                max_levels=spec.policy.max_levels,
            )
            assert y_pred is not None
            part = count_groups(
                frame,
                count_columns(spec.dataset),
                y_pred=y_pred,
                y_true=y_true,
                weight=data_mod.frame_weight(frame, spec.dataset),
            )
            total = part if total is None else total + part
            data_mod.refuse_levels(total, spec.policy.max_levels, partial=True)
            rows += len(frame)
            offset += len(frame)
            for k, v in unk.items():
                unknown[k] += v
            if spec.dataset.label and len(label_values) < MAX_LABEL_VALUES:
                for value in pd.unique(raw[spec.dataset.label]):
                    text = repr(data_mod.plain(value))
                    if text not in label_values and len(label_values) < MAX_LABEL_VALUES:
                        label_values.append(text)
    return {
        "index": shard.index,
        "start": shard.start,
        "stop": shard.stop,
        "rows": rows,
        "counts": None if total is None else total.to_dict(),
        "unknown": unknown,
        "label_values": label_values,
    }


def _sorted_levels(counts: Any, unknown_label: str) -> Any:
    """The counts with each attribute's levels in the engine's order: sorted, unknown last.

    ``audit.engine.data.group_category`` orders groups that way in memory; the merged
    cube is reordered to match, whatever order the shards' levels came in.
    """
    return counts.sorted_levels(lambda level: (level == unknown_label, level))


def merge_parts(
    parts: Sequence[dict[str, Any]], *, unknown_label: str = "unknown"
) -> tuple[Any, int, dict[str, int], list[str]]:
    """Sum shard results: (GroupCounts, rows, unknown counts, label values seen)."""
    from probes.counts import GroupCounts

    total = None
    rows = 0
    unknown: dict[str, int] = {}
    label_values: list[str] = []
    for part in sorted(parts, key=lambda p: int(p["index"])):
        rows += int(part["rows"])
        for k, v in part["unknown"].items():
            unknown[k] = unknown.get(k, 0) + int(v)
        for text in part.get("label_values", []):
            if text not in label_values and len(label_values) < MAX_LABEL_VALUES:
                label_values.append(text)
        if part["counts"] is not None:
            counts = GroupCounts.from_dict(part["counts"])
            total = counts if total is None else total + counts
    merged = None if total is None else _sorted_levels(total, unknown_label)
    return merged, rows, unknown, label_values


def _check_groups(spec: AuditSpec, total: Any, label_values: list[str]) -> None:
    """The engine's ``check_groups``, on counts: two groups per attribute, label seen."""
    for col in spec.dataset.protected:
        keys, cells = total.marginal([col]).flat()
        levels = [k[0] for k, c in zip(keys, cells) if c.sum() > 0]
        levels = [lv for lv in levels if lv != spec.dataset.unknown_label]
        if len(levels) < 2:
            group = levels[0] if levels else spec.dataset.unknown_label
            raise AuditInputError(
                MSG_ONE_GROUP.format(column=col, group=group), field="dataset.protected"
            )
    if spec.dataset.label and total.has_label:
        from probes.counts import FN, TP

        if float(total.table[:, TP].sum() + total.table[:, FN].sum()) == 0:
            raise AuditInputError(
                MSG_FAVORABLE_NOT_IN_LABELS.format(
                    value=data_mod.plain(spec.dataset.favorable_label),
                    column=spec.dataset.label,
                    seen=", ".join(label_values),
                ),
                field="dataset.favorable_label",
            )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def results_from_parts(
    spec_source: dict[str, Any],
    parts: Sequence[dict[str, Any]],
    *,
    audit_id: str,
    path: Path | None = None,
    started_at: str | None = None,
    dataset_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge shard counts into the results.json document ``compute_results`` would give.

    ``path`` is the dataset file (its name and sha256 go into ``dataset``), or
    ``dataset_info`` says what was counted (counts made in a database: ``pushdown``).
    """
    from audit.engine.run import assemble_results, entries_from_total

    spec, _ = parse_spec(spec_source)
    configs = validate_probe_configs(spec)
    total, rows, unknown, label_values = merge_parts(
        parts, unknown_label=spec.dataset.unknown_label
    )
    if total is None or rows == 0:
        name = path.name if path is not None else "the dataset"
        raise AuditInputError(f"dataset.path: {name} has no rows", field="dataset.path")
    data_mod.refuse_levels(total, spec.policy.max_levels)
    _check_groups(spec, total, label_values)
    return assemble_results(
        spec,
        configs,
        entries_from_total(spec, configs, total),
        audit_id=audit_id,
        started_at=started_at or _now(),
        model_info={
            "kind": spec.model.kind,
            "sha256": None,
            "prediction_column": spec.dataset.prediction,
        },
        dataset_info=(dataset_info or {"sha256": None, "rows": rows})
        if path is None
        else {"sha256": data_mod.file_sha256(path), "rows": rows, "path": path.name},
        unknown_counts=unknown,
    )


def preflight(spec: AuditSpec, path: Path) -> None:
    """The engine's file checks before any shard runs: columns present, expected hash."""
    data_mod.check_columns(spec.dataset, path, data_mod.header(spec.dataset, path))
    if spec.dataset.sha256:
        digest = data_mod.file_sha256(path)
        if digest != spec.dataset.sha256:
            raise AuditInputError(
                f"dataset.sha256: {path.name} has sha256 {digest}, "
                f"the spec expects {spec.dataset.sha256}",
                field="dataset.sha256",
            )
