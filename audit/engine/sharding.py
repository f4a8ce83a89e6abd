"""Split a large count-only audit into shards, count each shard, merge the counts.

This is how an audit outgrows one machine: the worker that claims a large
audit plans shards (:func:`plan_for`), a Celery chord counts each
(:func:`audit.engine.data.count_chunks`) in parallel on any number of workers,
and :func:`results_from_parts` merges the per-shard :class:`~probes.counts.GroupCounts`
by addition and builds the same results.json document that :func:`audit.engine.compute_results`
gives for the whole file (ids and times aside) — group metrics come from
counts, and counts add. It is the multi-process form of the engine's
in-process chunked path: both count with :func:`audit.engine.data.count_chunks` and
merge with :func:`merge_parts` (an in-process chunked run is one shard: the whole file).

Shards are read ranges (:mod:`audit.engine.reader`): Parquet row groups (planned from
the footer) or CSV byte ranges that start at record starts (planned by one
quote-aware pass; for a file read by ranges from an object store, by a window at
each cut: :mod:`audit.engine.cuts`), so no shard reads another's rows.

Only audits whose every metric reduces to counts are sharded: decisions from
a column (``model.kind: predictions``), only count-based probes (``from_counts``) over
protected columns, no ``dataset.score`` (AUC and calibration need all scores); a
``dataset.strata`` column is counted beside the protected ones (CDDPL from counts).
No ``dataset.proxy``: its multiple imputations rest on an EM fit over every row's
posterior, which does not reduce to counts; such an audit runs in one worker, in
chunks above ``BIASAUDIT_CHUNK_BYTES``. Everything here is pure (no Celery, no
database): shard results are plain JSON so they travel through the result backend.

>>> plan_shards(rows=10, shard_rows=4, max_shards=8)  # doctest: +NORMALIZE_WHITESPACE
[Shard(index=0, start=0, stop=4, unit='rows'), Shard(index=1, start=4, stop=7, unit='rows'),
 Shard(index=2, start=7, stop=10, unit='rows')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.engine import columnar, cuts, reader
from audit.engine import data as data_mod
from audit.engine.reader import Shard
from audit.engine.spec import AuditSpec, parse_spec, validate_probe_configs
from audit.errors import (
    MSG_FAVORABLE_NOT_IN_LABELS,
    MSG_ONE_GROUP,
    AuditInputError,
)
from probes.base import get_probe

MAX_LABEL_VALUES = data_mod.MAX_LABEL_VALUES
__all__ = ["Shard", "merge_checked", "plan_for", "results_from_parts", "should_shard"]


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
    return reader.file_format(spec.dataset, path) == "parquet"


def count_rows(spec: AuditSpec, path: Path) -> int | None:
    """Data rows from the Parquet footer; None for CSV (its size decides, never a pass)."""
    if not is_parquet(spec, path):
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(reader._source(path)).metadata.num_rows)


def should_shard(
    spec: AuditSpec, path: Path, *, rows: int | None, threshold_rows: int, threshold_bytes: int
) -> bool:
    """Shard when the audit is count-only and the file is above either size threshold.

    ``rows`` is the upload's stored count; a file given by path has its Parquet footer's.
    """
    if not shardable(spec):
        return False
    rows = rows if rows is not None else count_rows(spec, path)
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

    meta = pq.ParquetFile(reader._source(path)).metadata
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


def plan_csv_shards(path: Path, *, shard_rows: int, max_shards: int) -> list[Shard]:
    """Byte ranges of a CSV file, each starting at a record start (quoted line breaks skipped).

    The rows per byte come from the first MiB, so shards hold about ``shard_rows`` rows.
    """
    size = path.stat().st_size
    starts = reader.record_starts if isinstance(path, Path) else cuts.near_record_starts
    data_start = starts(path, [0])[0]
    if data_start >= size:
        return []
    with path.open("rb") as f:
        f.seek(data_start)
        sample = f.read(1 << 20)
    row_bytes = max(len(sample) / max(sample.count(b"\n"), 1), 1.0)
    count = max(1, min(max_shards, math.ceil((size - data_start) / (shard_rows * row_bytes))))
    step = (size - data_start) / count
    targets = [data_start + round(i * step) for i in range(1, count)]
    bounds = sorted({data_start, *starts(path, targets), size})
    return [
        Shard(i, a, b, reader.BYTES) for i, (a, b) in enumerate(zip(bounds, bounds[1:])) if b > a
    ]


def plan_for(
    spec: AuditSpec, path: Path, *, rows: int | None, shard_rows: int, max_shards: int
) -> list[Shard]:
    """The shards of ``path``: row groups (Parquet), byte ranges (CSV); one for a
    compressed CSV (``rows`` is unused: kept for callers that know it)."""
    if is_parquet(spec, path):
        return plan_parquet_shards(path, shard_rows=shard_rows, max_shards=max_shards)
    copy = columnar.usable(path)
    if copy is not None:  # an upload's columnar copy: its row groups, also for a .gz
        return plan_parquet_shards(copy, shard_rows=shard_rows, max_shards=max_shards)
    if reader.compressed(path):
        return [Shard(0, 0, -1)]
    return plan_csv_shards(path, shard_rows=shard_rows, max_shards=max_shards)


def not_split_reason(spec: AuditSpec, path: Path) -> str:
    """Why a file above the shard thresholds was read by one process (for the results)."""
    if is_parquet(spec, path):
        import pyarrow.parquet as pq

        if pq.ParquetFile(reader._source(path)).metadata.num_row_groups == 1:
            return (
                f"{path.name} has one Parquet row group, which is never split: write it with "
                "row groups of about BIASAUDIT_SHARD_ROWS rows to shard it"
            )
    elif reader.compressed(path) and columnar.usable(path) is None:
        return (
            f"{path.name} is a compressed CSV, one stream that is read whole: upload it "
            "uncompressed or as Parquet to shard it"
        )
    return f"{path.name} fits in one shard of BIASAUDIT_SHARD_ROWS rows"


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


def merge_checked(
    spec: AuditSpec, parts: Sequence[dict[str, Any]], path: Path | None
) -> tuple[Any, int, dict[str, int]]:
    """Merged counts, rows and unknowns of the parts, checked as the engine checks a frame."""
    total, rows, unknown, label_values = merge_parts(
        parts, unknown_label=spec.dataset.unknown_label
    )
    if total is None or rows == 0:
        name = path.name if path is not None else "the dataset"
        raise AuditInputError(f"dataset.path: {name} has no rows", field="dataset.path")
    data_mod.refuse_levels(total, spec.dataset, spec.policy.max_levels)
    _check_groups(spec, total, label_values)
    return total, rows, unknown


def results_from_parts(
    spec_source: dict[str, Any],
    parts: Sequence[dict[str, Any]],
    *,
    audit_id: str,
    path: Path | None = None,
    started_at: str | None = None,
    sha256: str | None = None,
    dataset_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge shard counts into the results.json document ``compute_results`` would give.

    ``path`` is the dataset file (its name goes into ``dataset``, and its sha256 unless
    ``sha256`` is given: an upload's, stored when it arrived); ``dataset.shards`` says
    how many shards were merged. Counts made in a database (push-down) have no file:
    ``dataset_info`` says what was counted.
    """
    from audit.engine.run import assemble_results, entries_from_total

    spec, _ = parse_spec(spec_source)
    configs = validate_probe_configs(spec)
    total, rows, unknown = merge_checked(spec, parts, path)
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
        else {
            "sha256": sha256 or data_mod.file_sha256(path),
            "rows": rows,
            "path": path.name,
            "shards": len(parts),
            **({"columnar": True} if parts and all(p.get("columnar") for p in parts) else {}),
        },
        unknown_counts=unknown,
    )


def preflight(spec: AuditSpec, path: Path, *, digest: bool = True) -> None:
    """The engine's file checks before any shard runs: columns present, and (``digest``)
    the expected hash (:func:`verify`)."""
    data_mod.check_columns(spec.dataset, path, data_mod.header(spec.dataset, path))
    if digest:
        verify(spec, path)


def verify(spec: AuditSpec, path: Path) -> None:
    """The file against ``dataset.sha256`` (an upload's, set by the worker; or written in
    the spec), once, by the planner: the shards read byte ranges and hash nothing. A stored
    object read by ranges has its pinned ETag's sha256; a local file is read whole."""
    if spec.dataset.sha256:
        from audit.engine.integrity import dataset_digest

        dataset_digest(spec.dataset, path)
