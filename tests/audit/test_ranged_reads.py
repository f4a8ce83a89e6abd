"""Shards read a stored dataset by ranged GETs (moto's server, a child process on loopback).

The planner (Parquet footer, CSV cuts near each target) and each shard read the
object through :class:`audit.storage.ranged.StoredFile`: the merged results equal
the local file's to the last digit, each shard fetches about its own share of the
bytes, and an object replaced after registration fails by name (ETag pinned).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow.parquet as pq
import pytest

from audit.engine import data as data_mod
from audit.engine import sharding
from audit.engine.cuts import near_record_starts
from audit.engine.reader import record_starts
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from audit.storage.ranged import QuoteWatch, StoredFile
from audit.storage.s3 import S3Store
from tests.factories import spec_for, write_pool
from tests.s3_server import new_bucket, s3_client, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.services
ROWS = 400_000


def _stored(endpoint: str, name: str, body: bytes) -> StoredFile:
    store = S3Store(new_bucket(endpoint), "tenants", s3_client(endpoint))
    store.put_bytes(f"acme/{name}", body, "application/octet-stream")
    info = store.head(f"acme/{name}")
    sha = hashlib.sha256(body).hexdigest()
    return StoredFile(store, f"acme/{name}", size=info.size, etag=info.etag, sha256=sha)


def _as_path(stored: StoredFile) -> Path:
    return cast(Path, stored)  # the reader takes it for a local path (name, stat, open)


def _count(spec: Any, path: Any, shards: list[Any]) -> list[dict[str, Any]]:
    return [
        data_mod.count_chunks(spec.dataset, path, shard=s, chunk_rows=50_000, max_levels=1000)
        for s in shards
    ]


def _results(raw: dict[str, Any], parts: list[dict[str, Any]], path: Any, sha: str) -> Any:
    doc = sharding.results_from_parts(raw, parts, audit_id="a", path=path, sha256=sha)
    for key in ("started_at", "finished_at"):
        doc["audit"].pop(key, None)
    return doc


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pool(tmp_path_factory.mktemp("pool") / "pool.csv", n=ROWS, seed=11)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_shards_read_by_range_equal_the_local_file(
    fmt: str,
    pool: Path,
    tmp_path: Path,
    s3_endpoint: str,  # noqa: F811
) -> None:
    local = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        local.write_bytes(pool.read_bytes())
    else:
        pd.read_csv(pool).to_parquet(local, row_group_size=ROWS // 8)
    body = local.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    stored = _stored(s3_endpoint, f"d.{fmt}", body)
    raw = spec_for(local)
    spec, _ = parse_spec(raw)
    local_plan = sharding.plan_for(spec, local, rows=None, shard_rows=ROWS // 4, max_shards=8)
    stored_plan = sharding.plan_for(
        spec, _as_path(stored), rows=None, shard_rows=ROWS // 4, max_shards=8
    )
    assert len(stored_plan) >= 4 and stored_plan == local_plan
    planned = stored.stats.bytes
    assert planned < (2 << 20), planned  # footer, or a window at each cut: not the file

    expected = _results(raw, _count(spec, local, local_plan), local, sha)
    parts = []
    for shard in stored_plan:  # one machine per shard: a fresh reader, its own counters
        one = _stored_again(stored)
        parts += _count(spec, one, [shard])
        share = shard.stop - shard.start if fmt == "csv" else _groups_bytes(local, shard)
        assert one.stats.bytes < 2 * share, (shard, one.stats, share)
        assert share < len(body) * 0.6 and one.stats.bytes < len(body) * 0.6  # not the file
    assert _results(raw, parts, stored, sha) == expected


def _groups_bytes(path: Path, shard: Any) -> int:
    """A Parquet shard's row groups (all columns, compressed), plus the footer read."""
    meta = pq.ParquetFile(path).metadata
    total, start = meta.serialized_size + (64 << 10), 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        if shard.start <= start < shard.stop:
            total += sum(group.column(j).total_compressed_size for j in range(group.num_columns))
        start += group.num_rows
    return total


def _stored_again(stored: StoredFile) -> StoredFile:
    return StoredFile(
        stored.store, stored.key, size=stored.size, etag=stored.etag, sha256=stored.sha256
    )


def test_a_replaced_object_fails_by_name(pool: Path, s3_endpoint: str) -> None:  # noqa: F811
    body = pool.read_bytes()[: 1 << 20]
    stored = _stored(s3_endpoint, "r.csv", body)
    spec, _ = parse_spec(spec_for(Path("r.csv")))
    shard = sharding.plan_for(spec, _as_path(stored), rows=None, shard_rows=10_000, max_shards=4)[1]
    stored.store.put_bytes("acme/r.csv", body.replace(b"female", b"FEMALE"), "text/csv")
    for reader in (stored, _stored_again(stored)):  # mid-audit, or a fresh shard
        with pytest.raises(AuditInputError, match="was replaced in the object store") as info:
            _count(spec, reader, [shard])
        assert info.value.field == "dataset.id" and "r.csv" in str(info.value)
    with pytest.raises(AuditInputError, match="was replaced"):
        stored.check()
    stored.store.delete("acme/r.csv")
    with pytest.raises(AuditInputError, match="missing from the object store"):
        _count(spec, _stored_again(stored), [shard])


def test_cuts_near_targets_and_the_quote_check(tmp_path: Path) -> None:
    rows = [f'{i},"note {i}",1\n' for i in range(2000)]
    rows[1000] = '1000,"two\nlines",1\n'
    path = tmp_path / "q.csv"
    path.write_text("id,note,x\n" + "".join(rows))
    text = path.read_bytes()
    inside = text.index(b"two\n") + 2  # a target inside the quoted line break
    before = text.index(b'"two') - 1
    assert near_record_starts(path, [0, before]) == record_starts(path, [0, before])
    wrong = near_record_starts(path, [inside])[0]
    assert wrong != record_starts(path, [inside])[0]  # fooled, as documented
    watch = QuoteWatch(0, wrong)  # the shard ending there sees an odd number of quotes
    watch.seen(0, text, 0, len(text))
    assert watch.complete and not watch.balanced
    good = QuoteWatch(0, record_starts(path, [inside])[0])
    good.seen(0, text, 0, len(text))
    assert good.complete and good.balanced
