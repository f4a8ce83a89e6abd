"""Datasets read from a server-side database: ``dataset.source`` + ``dataset.query``.

``source: NAME`` names a read-only database configured on the server as
``BIASAUDIT_SOURCE_<NAME>_URL`` (never a URL in the spec). The query is one
SELECT; ``:window_start`` and ``:window_end`` are bound to the run's window
(a scheduled run: the previous due time to this one). The query runs in a
read-only transaction (PostgreSQL ``SET TRANSACTION READ ONLY``; SQLite
``PRAGMA query_only``) and its rows are streamed, a batch at a time, into a CSV
file that the engine then reads like any dataset. The manifest records the
source name, query, window and row count, never the URL.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from audit.errors import AuditInputError

SOURCE_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
SOURCE_DOC = (
    "a read-only database configured on the server as BIASAUDIT_SOURCE_<NAME>_URL "
    "(replaces path; never a URL in the spec)"
)
QUERY_DOC = "one SELECT run on dataset.source; may use :window_start and :window_end"
BATCH_ROWS = 10_000


def check_source_fields(source: str | None, query: str | None, *, has_file: bool) -> None:
    """``source`` excludes path/id, needs ``query``; the query is a single SELECT."""
    if source is not None and has_file:
        raise ValueError("dataset.source: give dataset.source or dataset.path/id, not both")
    if (source is None) != (query is None):
        raise ValueError("dataset.query: dataset.source and dataset.query go together")
    if query is not None:
        body = query.strip().rstrip(";").strip()
        if ";" in body:
            raise ValueError("dataset.query: one statement only (no ';' between statements)")
        first = body.split(None, 1)[0].lower() if body else ""
        if first not in ("select", "with"):
            raise ValueError(f"dataset.query: must be a SELECT, got {first[:20]!r}")


def query_params(query: str, dataset: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for name in ("window_start", "window_end"):
        if f":{name}" in query:
            if dataset.get(name) is None:
                raise AuditInputError(
                    f"dataset.{name}: the query uses :{name}; give a value (a scheduled "
                    "run sets it)",
                    field=f"dataset.{name}",
                )
            params[name] = dataset[name]
    return params


def materialize(
    dataset: dict[str, Any], url: str, out: Path, *, max_rows: int = 10_000_000
) -> dict[str, Any]:
    """Run the query read-only, stream its rows to ``out`` (CSV); what the manifest records.

    More than ``max_rows`` rows (``BIASAUDIT_MAX_UPLOAD_ROWS``) fail the audit."""
    query = str(dataset["query"]).strip().rstrip(";")
    params = query_params(query, dataset)
    rows = stream_to_csv(dataset, url, query, params, out, max_rows=max_rows, what="rows")
    return {
        "source": dataset["source"],
        "query": query,
        "window_start": params.get("window_start"),
        "window_end": params.get("window_end"),
        "rows": rows,
    }


def stream_to_csv(
    dataset: dict[str, Any],
    url: str,
    query: str,
    params: dict[str, Any],
    out: Path,
    *,
    max_rows: int,
    what: str,
    columns: list[str] | None = None,
) -> int:
    """Run ``query`` in a read-only transaction, its rows as CSV into ``out``; rows written.

    ``columns`` replaces the header (the result's own names otherwise). No rows, more
    than ``max_rows`` or a failing query are input errors naming ``dataset.query`` (the
    database's message, never the URL); ``out`` is removed on error."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    rows = 0
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            result = conn.execution_options(stream_results=True).execute(text(query), params)
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns or list(result.keys()))
                while batch := result.fetchmany(BATCH_ROWS):
                    writer.writerows(batch)
                    rows += len(batch)
                    if rows > max_rows:
                        raise AuditInputError(
                            f"dataset.query: more than {max_rows} {what} from source "
                            f"{dataset['source']!r} (BIASAUDIT_MAX_UPLOAD_ROWS); narrow the query",
                            field="dataset.query",
                        )
            conn.rollback()
    except AuditInputError:
        out.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - the database's message, without the URL
        out.unlink(missing_ok=True)
        raise AuditInputError(
            f"dataset.query: the query failed on source {dataset['source']!r}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            field="dataset.query",
        ) from None
    finally:
        engine.dispose()
    if rows == 0:
        out.unlink(missing_ok=True)
        raise AuditInputError(
            f"dataset.query: no rows from source {dataset['source']!r} in the window "
            f"{params.get('window_start')} .. {params.get('window_end')}",
            field="dataset.query",
        )
    return rows


def count_rows(dataset: dict[str, Any], url: str) -> int:
    """How many rows the query returns now for the dataset's window (read-only, no copy).

    Used to notice rows that arrived after a window was audited (late rows).
    """
    from sqlalchemy import create_engine, text

    query = str(dataset["query"]).strip().rstrip(";")
    params = query_params(query, dataset)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            counted = conn.execute(
                text(f"select count(*) from ({query}) as biasaudit_late_check"), params
            ).scalar_one()
            conn.rollback()
    finally:
        engine.dispose()
    return int(counted)
