"""``biasaudit.convert_dataset``: the columnar copy of a stored CSV upload, made once.

Against PostgreSQL and the local store: a CSV dataset gets ``<id>.csv.columnar.parquet``
beside it (row groups of ``BIASAUDIT_SHARD_ROWS`` rows, the original's size and sha256
in its metadata), a second run keeps it, a file the converter refuses gets none, and
neither a Parquet upload nor an unknown id is converted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from audit.engine import columnar
from audit.settings import get_settings
from audit.storage import repo, session_scope
from tests.workers.conftest import add_dataset
from workers.columnar import convert_dataset


def test_csv_upload_gets_its_copy_once(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIASAUDIT_SHARD_ROWS", "500")
    get_settings.cache_clear()
    data: Path = service_env["data"]
    dataset_id = add_dataset(data, n=1200)
    original = data / "acme" / f"{dataset_id}.csv"
    assert convert_dataset("acme", dataset_id) == "made"
    copy = columnar.copy_path(original)
    meta = pq.ParquetFile(copy).metadata
    assert (meta.num_rows, meta.num_row_groups) == (1200, 3)
    with session_scope() as session:
        row = repo.get_dataset(session=session, project="acme", dataset_id=dataset_id)
        assert row is not None
        sha256 = row.sha256
    schema_meta = pq.read_schema(copy).metadata
    assert schema_meta[columnar.SOURCE_SHA256] == sha256.encode()
    assert columnar.usable(original) == copy
    made = copy.stat().st_mtime_ns
    assert convert_dataset("acme", dataset_id) == "exists"  # idempotent: a redelivery
    assert copy.stat().st_mtime_ns == made


def test_refused_parquet_and_unknown_get_no_copy(service_env: dict[str, Any]) -> None:
    data: Path = service_env["data"]
    ragged = add_dataset(data, n=200)
    path = data / "acme" / f"{ragged}.csv"
    with open(path, "ab") as f:
        f.write(b"F,White,1,1,EXTRA,FIELDS\n")
    assert convert_dataset("acme", ragged) == "refused"
    assert not columnar.copy_path(path).exists()
    assert sorted(p.name for p in (data / "acme").iterdir()) == [path.name]  # no temp file
    other = add_dataset(data, n=200)
    stored = data / "acme" / f"{other}.csv"
    parquet = stored.with_suffix(".parquet")
    stored.rename(parquet)
    with session_scope() as session:
        row = repo.get_dataset(session=session, project="acme", dataset_id=other)
        assert row is not None
        row.path = str(parquet)
    assert convert_dataset("acme", other) == "not-csv"
    assert convert_dataset("acme", "00000000-0000-0000-0000-000000000000") == "gone"
    assert convert_dataset("other-project", ragged) == "gone"
