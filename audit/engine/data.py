"""Dataset loading and validation: CSV/Parquet in, typed ProbeInput out.

- Labels and predictions are compared with ``favorable_label`` after a
  canonical form (1, "1", 1.0, True and "true" are the same value), so a
  dtype change between files does not change results.
- Missing protected values become an explicit ``unknown`` group: reported,
  never silently dropped.
- Files above ``chunk_bytes`` are read in chunks and only counts are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.engine import columnar
from audit.engine.columns import count_columns, cut_bins, level_field, levels_error, weight_values
from audit.engine.columns import frame_weight as frame_weight  # data_mod.frame_weight
from audit.engine.integrity import dataset_digest
from audit.engine.reader import BYTES, Shard, header, read_chunks, read_frame, rows_before
from audit.engine.spec import DatasetSpec
from audit.errors import (
    MSG_FAVORABLE_NOT_IN_LABELS,
    MSG_FILE_NOT_FOUND,
    MSG_MISSING_COLUMN,
    MSG_NAN_PREDICTIONS,
    MSG_NONFINITE_SCORES,
    MSG_ONE_GROUP,
    AuditCancelled,
    AuditInputError,
    did_you_mean,
)
from probes.counts import GroupCounts
from probes.util import canonical_label, file_sha256

canonical = canonical_label  # 1 == "1" == 1.0 == True == "true"
__all__ = ["Shard", "count_chunks", "file_sha256", "header", "load_dataset", "read_frame"]
MAX_LABEL_VALUES = 10  # label values kept per part for the "favorable label not seen" message


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages (``0``, not ``np.int64(0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def favorable_mask(series: pd.Series, favorable: Any) -> np.ndarray:
    """Boolean array: True where ``series`` equals ``favorable`` (canonical comparison).

    ``favorable`` may be a list: a value equal to any of them counts.
    """
    values = favorable if isinstance(favorable, (list, tuple)) else [favorable]
    targets = {canonical(v) for v in values}
    uniques = pd.unique(series.dropna())
    hits = {u for u in uniques if canonical(u) in targets}
    if not hits:
        return np.zeros(len(series), dtype=bool)
    return series.isin(list(hits)).to_numpy(dtype=bool)


def group_category(
    series: pd.Series, unknown: str, *, max_levels: int | None = None, field: str | None = None
) -> tuple[pd.Categorical, int]:
    """Protected column as a categorical of stripped text levels, sorted, ``unknown`` last.

    Works on the distinct values only (factorize / existing categories), so it costs
    one hash pass over the rows whatever their type. Missing or empty values become
    ``unknown``; returns the categorical and how many rows were missing. More than
    ``max_levels`` levels (``policy.max_levels``: an id column by mistake) is an input
    error naming the column, raised before anything else is built.
    """
    categorical = isinstance(series.dtype, pd.CategoricalDtype)
    if categorical:
        codes = series.cat.codes.to_numpy()
        values = series.cat.categories.tolist()
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        values = uniques.tolist()
    labels = [str(v).strip() for v in values]
    labels = [unknown if lab == "" else lab for lab in labels]
    missing = int((codes < 0).sum())
    if max_levels is not None and len(labels) > max_levels:  # before sorting or recoding
        # declared categories may outnumber the values present: count those present
        present = np.unique(codes[codes >= 0]) if categorical else range(len(labels))
        seen = {labels[i] for i in present}
        count = len(seen - {unknown}) + (1 if missing or unknown in seen else 0)
        if count > max_levels:
            raise levels_error(field or "dataset.protected", series.name, count, max_levels)
    levels = sorted(set(labels) - {unknown})
    if missing or unknown in labels:
        levels.append(unknown)
    index = {lab: i for i, lab in enumerate(levels)}
    remap = np.array([index[lab] for lab in labels] + [index.get(unknown, -1)], dtype=np.int32)
    new_codes = remap[codes]  # code -1 picks the last entry: unknown
    return pd.Categorical.from_codes(new_codes, categories=levels), missing


@dataclass(frozen=True)
class LoadedDataset:
    """A validated dataset: frame (protected as category) and typed arrays."""

    frame: pd.DataFrame
    path: Path
    sha256: str
    y_true: np.ndarray | None
    y_pred: np.ndarray | None
    score: np.ndarray | None
    unknown_counts: dict[str, int]


def resolve_path(spec: DatasetSpec, base_dir: Path) -> Path:
    if spec.source:
        raise AuditInputError(
            "dataset.source: only the service's workers read server sources (submit the "
            "spec to the API or schedule it); here, export the rows to CSV and use dataset.path",
            field="dataset.source",
        )
    if not spec.path:
        raise AuditInputError(
            "dataset.path: required (or dataset.id via the API)", field="dataset.path"
        )
    path = Path(spec.path)
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise AuditInputError(
            MSG_FILE_NOT_FOUND.format(path=path) + _not_found_hint(spec.path, base_dir),
            field="dataset.path",
        )
    return path


def _not_found_hint(name: str, base_dir: Path) -> str:
    """Where a relative path was looked for, and how a bundled example makes its data."""
    hint = "" if Path(name).is_absolute() else f" (relative to the spec's folder {base_dir})"
    examples = Path(__file__).resolve().parents[1] / "examples"
    if base_dir.resolve() == examples:
        hint += (
            "; a bundled example's data is generated: `python -m audit.examples.<name> --out "
            "DIR` writes it with a spec.yaml into DIR, `biasaudit demo` does it for all"
        )
    return hint


def check_columns(spec: DatasetSpec, path: Path, columns: list[str]) -> None:
    """Every column the spec names exists; the message names the field and column."""
    named: list[tuple[str, str]] = [(f"protected[{i}]", c) for i, c in enumerate(spec.protected)]
    for field in ("label", "prediction", "score", "strata", "weight"):
        col = getattr(spec, field)
        if col:
            named.append((field, col))
    named += [(f"proxy.{f}", c) for f, c in (spec.proxy.columns() if spec.proxy else [])]
    missing = [
        MSG_MISSING_COLUMN.format(
            field=field,
            column=col,
            file=path.name,
            columns=", ".join(map(str, columns)),
            hint=did_you_mean(col, columns),
        )
        for field, col in named
        if col not in columns
    ]
    if missing:  # every missing column at once
        first = next(f for f, c in named if c not in columns)
        raise AuditInputError("\n".join(missing), field=f"dataset.{first}")


def prepare(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    *,
    need_prediction: bool,
    row_offset: int = 0,
    max_levels: int | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None, np.ndarray | None, dict[str, int]]:
    """Validate and type one frame (or chunk): protected as category, label arrays as bool.

    ``max_levels`` (``policy.max_levels``) bounds each protected column's distinct values;
    scores must be finite numbers (``inf``, ``1e400``, NaN are refused naming the column).
    """
    unknown_counts: dict[str, int] = {}
    out = frame.copy(deep=False)
    for col, edges in spec.bins.items():
        out[col] = cut_bins(out[col], edges, row_offset=row_offset)
    if spec.weight:
        out[spec.weight] = weight_values(out[spec.weight], row_offset=row_offset)
    for i, col in enumerate(spec.protected):
        out[col], unknown_counts[col] = group_category(
            out[col], spec.unknown_label, max_levels=max_levels, field=f"dataset.protected[{i}]"
        )
    if spec.strata and spec.strata not in spec.protected:  # strata: groups alike
        out[spec.strata] = group_category(
            out[spec.strata], spec.unknown_label, max_levels=max_levels, field="dataset.strata"
        )[0]
    y_true = None
    if spec.label:
        lab = out[spec.label]
        nan = lab.isna()
        if nan.any():
            raise AuditInputError(
                f"dataset.label: column {spec.label!r} has {int(nan.sum())} missing value(s) "
                f"(first at row {int(np.argmax(nan.to_numpy())) + row_offset})",
                field="dataset.label",
            )
        y_true = favorable_mask(lab, spec.favorable_label)
    y_pred = None
    if spec.prediction:
        pred = out[spec.prediction]
        nan = pred.isna().to_numpy()
        if nan.any():
            raise AuditInputError(
                MSG_NAN_PREDICTIONS.format(
                    column=spec.prediction,
                    count=int(nan.sum()),
                    row=int(np.argmax(nan)) + row_offset,
                ),
                field="dataset.prediction",
            )
        y_pred = favorable_mask(pred, spec.favorable_label)
    elif need_prediction:
        raise AuditInputError(
            "dataset.prediction: required when model.kind is 'predictions' "
            "(the column holding the model's decisions)",
            field="dataset.prediction",
        )
    score = None
    if spec.score:
        sc = pd.to_numeric(out[spec.score], errors="coerce")
        bad = sc.isna().to_numpy()
        if bad.any():
            raise AuditInputError(
                f"dataset.score: column {spec.score!r} has {int(bad.sum())} missing or "
                f"non-numeric value(s) (first at row {int(np.argmax(bad)) + row_offset})",
                field="dataset.score",
            )
        score = sc.to_numpy(dtype=float)
        infinite = ~np.isfinite(score)
        if infinite.any():
            raise AuditInputError(
                MSG_NONFINITE_SCORES.format(
                    column=spec.score,
                    count=int(infinite.sum()),
                    row=int(np.argmax(infinite)) + row_offset,
                ),
                field="dataset.score",
            )
    return out, y_true, y_pred, score, unknown_counts


def check_groups(frame: pd.DataFrame, spec: DatasetSpec, y_true: np.ndarray | None) -> None:
    """At least two groups per protected column; favorable label occurs among labels."""
    for col in spec.protected:
        levels = [c for c in frame[col].cat.categories if c != spec.unknown_label]
        observed = frame[col].value_counts()
        levels = [c for c in levels if observed.get(c, 0) > 0]
        if len(levels) < 2:
            raise AuditInputError(
                MSG_ONE_GROUP.format(column=col, group=levels[0] if levels else spec.unknown_label),
                field="dataset.protected",
            )
    if spec.label and y_true is not None and not y_true.any():
        seen = ", ".join(repr(plain(v)) for v in pd.unique(frame[spec.label])[:10])
        raise AuditInputError(
            MSG_FAVORABLE_NOT_IN_LABELS.format(
                value=plain(spec.favorable_label), column=spec.label, seen=seen
            ),
            field="dataset.favorable_label",
        )


def load_dataset(
    spec: DatasetSpec,
    base_dir: Path,
    *,
    need_prediction: bool,
    extra_columns: list[str] | None = None,
    max_levels: int | None = None,
) -> LoadedDataset:
    """Load, validate and type the whole dataset in memory."""
    path = resolve_path(spec, base_dir)
    digest = dataset_digest(spec, path)  # checked against the expected (an upload's)
    columns = header(spec, path)
    check_columns(spec, path, columns)
    for c in extra_columns or []:
        if c not in columns:
            raise AuditInputError(
                f"column {c!r} not found in {path.name}; columns are: {', '.join(columns)}"
            )
    frame = read_frame(spec, path)
    if frame.empty:
        raise AuditInputError(f"dataset.path: {path.name} has no rows", field="dataset.path")
    frame, y_true, y_pred, score, unknown = prepare(
        frame, spec, need_prediction=need_prediction, max_levels=max_levels
    )
    check_groups(frame, spec, y_true)
    return LoadedDataset(frame, path, digest, y_true, y_pred, score, unknown)


def refuse_levels(
    total: GroupCounts, spec: DatasetSpec, max_levels: int, *, partial: bool = False
) -> None:
    """Merged counts (chunks, shards) with a column over ``policy.max_levels``: an input
    error naming the column and its field (``dataset.protected[i]``, ``dataset.strata``)."""
    for column, levels in zip(total.attributes, total.levels):
        if len(levels) > max_levels:
            count = f"at least {len(levels)}" if partial else str(len(levels))
            raise levels_error(level_field(spec, column), column, count, max_levels)


def _prepare_at(
    raw: pd.DataFrame, spec: DatasetSpec, offset: int | None, locate: Callable[..., int], **kw: Any
) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None, np.ndarray | None, dict[str, int]]:
    """``prepare`` of a chunk whose first row number may be unknown (a CSV byte shard):
    it is counted (``locate``) only when a message must name a row."""
    try:
        return prepare(raw, spec, row_offset=offset or 0, **kw)
    except AuditInputError:
        if offset is not None:
            raise
        return prepare(raw, spec, row_offset=locate(), **kw)  # raises again, the row right


def count_chunks(
    spec: DatasetSpec,
    path: Path,
    *,
    chunk_rows: int,
    max_levels: int,
    shard: Shard | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Confusion counts of the file, or of one shard, read in chunks (counts add).

    The one counting path of large files: an in-process chunked run is the whole file
    as one part, a sharded run one part per shard, merged alike
    (:func:`audit.engine.sharding.merge_parts`). Returns the part as JSON: ``index``,
    ``start``, ``stop``, ``unit``, ``rows``, ``counts``, ``unknown`` (missing protected
    values per column) and ``label_values`` (for the "favorable label not seen" message).
    Input errors name the row in the whole file; a cancel request between chunks
    raises ``AuditCancelled``.
    """
    from probes.counts import count_groups

    check_columns(spec, path, header(spec, path))
    shard = shard or Shard(0, 0, -1)
    total = None
    rows = 0
    unknown = {c: 0 for c in spec.protected}
    label_values: list[str] = []
    first = None if shard.unit == BYTES else shard.start  # row number of the shard's first row
    copied = shard.unit != BYTES and columnar.read_from_copy(spec, path)
    chunks = read_chunks(spec, path, chunk_rows=chunk_rows, shard=None if shard.stop < 0 else shard)
    with closing(chunks):  # the file is closed also when a chunk is refused
        for raw in chunks:
            if should_cancel is not None and should_cancel():
                raise AuditCancelled("audit cancelled")
            frame, y_true, y_pred, _, unk = _prepare_at(
                raw,
                spec,
                None if first is None else first + rows,
                lambda done=rows: rows_before(spec, path, shard.start) + done,
                need_prediction=True,
                max_levels=max_levels,
            )
            assert y_pred is not None
            w = frame_weight(frame, spec)
            part = count_groups(frame, count_columns(spec), y_pred=y_pred, y_true=y_true, weight=w)
            total = part if total is None else total + part
            refuse_levels(total, spec, max_levels, partial=True)  # each chunk may be under, not all
            rows += len(frame)
            for k, v in unk.items():
                unknown[k] += v
            if spec.label and len(label_values) < MAX_LABEL_VALUES:
                for value in pd.unique(raw[spec.label]):
                    text = repr(plain(value))
                    if text not in label_values and len(label_values) < MAX_LABEL_VALUES:
                        label_values.append(text)
    return {
        "index": shard.index,
        "start": shard.start,
        "stop": shard.stop,
        "unit": shard.unit,
        "rows": rows,
        "counts": None if total is None else total.to_dict(),
        "unknown": unknown,
        "label_values": label_values,
        **({"columnar": True} if copied else {}),
    }
