"""Per-column typing from the spec: ``dataset.bins`` (numeric cut into groups),
``dataset.weight`` (validated non-negative, finite weights) and which columns are
counted (the protected columns, then ``dataset.strata``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.engine.spec import DatasetSpec
from audit.errors import AuditInputError
from probes.counts import MSG_TOO_MANY_LEVELS


def _edge_text(x: float) -> str:
    return f"{x:g}"


def bin_labels(edges: list[float]) -> list[str]:
    """Labels of the bins cut at ``edges``: ``<a``, ``[a,b)``, ..., ``>=z``."""
    inner = [f"[{_edge_text(a)},{_edge_text(b)})" for a, b in zip(edges, edges[1:])]
    return [f"<{_edge_text(edges[0])}", *inner, f">={_edge_text(edges[-1])}"]


def cut_bins(series: pd.Series, edges: list[float], *, row_offset: int = 0) -> pd.Series:
    """A numeric column cut at ``edges`` (``dataset.bins``); missing values stay missing.

    A value that is not a number is an input error naming the column, value and row.
    """
    text = series.astype("string").str.strip()
    missing = series.isna().to_numpy() | (text == "").fillna(True).to_numpy()
    values = pd.to_numeric(series.where(~missing), errors="coerce")
    bad = (values.isna().to_numpy() & ~missing) | ~np.isfinite(values.fillna(0).to_numpy())
    if bad.any():
        i = int(np.argmax(bad))
        raise AuditInputError(
            f"dataset.bins.{series.name}: column {series.name!r} has a value that is not a "
            f"finite number: {series.iloc[i]!r} (row {i + row_offset})",
            field=f"dataset.bins.{series.name}",
        )
    codes = np.searchsorted(np.asarray(edges, dtype=float), values.to_numpy(), side="right")
    labels = np.asarray(bin_labels(edges), dtype=object)[np.minimum(codes, len(edges))]
    labels[missing] = None
    return pd.Series(labels, index=series.index, name=series.name)


def weight_values(series: pd.Series, *, row_offset: int = 0) -> np.ndarray:
    """The ``dataset.weight`` column as float: non-negative and finite, else an input error."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise AuditInputError(
            f"dataset.weight: column {series.name!r} has {int(bad.sum())} missing, negative, "
            f"non-finite or non-numeric value(s) (first at row {i + row_offset}: "
            f"{series.iloc[i]!r}); weights must be finite numbers >= 0",
            field="dataset.weight",
        )
    return values


def frame_weight(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray | None:
    """The validated weight array of a prepared frame, or None without ``dataset.weight``."""
    return frame[spec.weight].to_numpy(dtype=float) if spec.weight else None


def count_columns(spec: DatasetSpec) -> list[str]:
    """Columns counted per group: the protected ones, then ``dataset.strata`` (conditional
    metrics such as CDDPL come from counts over the groups and the strata, so they add
    across chunks and shards like every other count)."""
    extra = [spec.strata] if spec.strata and spec.strata not in spec.protected else []
    return [*spec.protected, *extra]


def text_columns(spec: DatasetSpec) -> list[str]:
    """Columns read as text: group names must not depend on a chunk's type inference."""
    return [*spec.protected, *([spec.strata] if spec.strata else [])]


def level_field(spec: DatasetSpec, column: str) -> str:
    """The spec field of a counted column: ``dataset.protected[i]`` or ``dataset.strata``."""
    if column in spec.protected:
        return f"dataset.protected[{spec.protected.index(column)}]"
    return "dataset.strata" if column == spec.strata else "dataset.protected"


def levels_error(field: str, column: object, count: int | str, limit: int) -> AuditInputError:
    """A column over ``policy.max_levels`` (an id column by mistake), named by its field."""
    prefix = field.split("[", 1)[0]  # dataset.protected[1] -> dataset.protected
    message = MSG_TOO_MANY_LEVELS.format(field=prefix, column=column, count=count, limit=limit)
    return AuditInputError(message, field=field)
