"""Shards read only their own part of the file, and every value equals the in-process audit.

The same table is audited in memory, in-process in chunks, sharded as Parquet
(row groups) and sharded as CSV (byte ranges), the CSV written with quoted line
breaks, CRLF line ends or no final line break, and cut by planned offsets that
fall inside quoted fields. Every value of the results must be equal, to the last
digit; only the file's own fields (hash, name, how it was read) differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.engine import data as data_mod
from audit.engine import reader, sharding
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from audit.settings import get_settings
from tests.golden_plugin import normalised

FILE_FIELDS = ("sha256", "path", "shards", "chunked")


def _frame(n: int = 1500, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n)
    race = rng.choice(
        np.array(["Black", "White", 'Asian, "Pacific"', None], dtype=object),
        size=n,
        p=[0.3, 0.5, 0.15, 0.05],
    )
    notes = rng.choice(
        ['said "no"\nthen left', "plain", "two\nline\nbreaks, and a comma", ""], size=n
    )
    return pd.DataFrame(
        {
            "note": notes,
            "sex": sex,
            "race": race,
            "qualified": rng.integers(0, 2, size=n),
            "advanced": (rng.random(n) < np.where(sex == "female", 0.25, 0.45)).astype(int),
        }
    )


def _spec(name: str) -> dict[str, Any]:
    return {
        "name": "shard-reading",
        "domain": "hiring",
        "dataset": {
            "path": name,
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race"],
        },
        "probes": [
            {"kind": "demographic", "intersectional": True, "bootstrap": 100},
            {"kind": "demographic", "attributes": ["race"]},
        ],
    }


def _write_csv(frame: pd.DataFrame, path: Path, *, variant: str) -> Path:
    text = frame.to_csv(index=False, lineterminator="\r\n" if variant == "crlf" else "\n")
    if variant == "no-final-newline":
        text = text.rstrip("\n")
    path.write_bytes(text.encode("utf-8"))
    return path


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    """The golden normal form without the fields that describe the file itself."""
    doc = normalised(doc)
    doc["manifest"]["spec"]["dataset"].pop("path")
    for key in FILE_FIELDS:
        doc["dataset"].pop(key, None)
    return doc


def _sharded(spec: dict[str, Any], path: Path, *, shard_rows: int) -> dict[str, Any]:
    parsed, _ = parse_spec(spec)
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=shard_rows, max_shards=64)
    parts = [
        data_mod.count_chunks(
            parsed.dataset, path, shard=s, chunk_rows=97, max_levels=parsed.policy.max_levels
        )
        for s in shards
    ]
    parts = json.loads(json.dumps(parts))  # what travels through the result backend
    return sharding.results_from_parts(spec, parts[::-1], audit_id="x", path=path)


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process runs read every file in chunks (the engine's large-file path)."""
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "128")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _inside_quotes(data: bytes, offset: int) -> bool:
    return data[:offset].count(b'"') % 2 == 1


@pytest.mark.parametrize("variant", ["lf", "crlf", "no-final-newline"])
def test_every_value_equal_in_memory_chunked_and_sharded_parquet_and_csv(
    tmp_path: Path, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame()
    csv = _write_csv(frame, tmp_path / "pool.csv", variant=variant)
    parquet = tmp_path / "pool.parquet"
    frame.to_parquet(parquet, row_group_size=100)
    in_memory = _values(compute_results(_spec(csv.name), audit_id="a", base_dir=tmp_path))

    targets: list[int] = []
    real = reader.record_starts

    def spy(path: Path, wanted: list[int]) -> list[int]:
        targets.extend(wanted)
        return real(path, wanted)

    monkeypatch.setattr(reader, "record_starts", spy)
    by_csv = _sharded(_spec(csv.name), csv, shard_rows=40)
    by_parquet = _sharded(_spec(parquet.name), parquet, shard_rows=250)
    assert by_csv["dataset"]["shards"] >= 30 and by_parquet["dataset"]["shards"] == 5
    data = csv.read_bytes()
    assert sum(_inside_quotes(data, t) for t in targets) >= 5  # cuts inside quoted fields
    assert _values(by_csv) == in_memory
    assert _values(by_parquet) == in_memory
    assert by_csv["dataset"]["rows"] == by_parquet["dataset"]["rows"] == len(frame)

    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "128")
    get_settings.cache_clear()
    try:
        for path in (csv, parquet):
            doc = compute_results(_spec(path.name), audit_id="a", base_dir=tmp_path)
            assert doc["dataset"]["chunked"] is True
            assert _values(doc) == in_memory
    finally:
        get_settings.cache_clear()


def test_record_starts_are_the_line_breaks_outside_quotes(tmp_path: Path) -> None:
    path = _write_csv(_frame(60), tmp_path / "p.csv", variant="crlf")
    data = path.read_bytes()
    truth = [i + 1 for i, b in enumerate(data) if b == ord("\n") and not _inside_quotes(data, i)]
    targets = list(range(0, len(data), 7))
    expected = [next((s for s in truth if s - 1 >= t), len(data)) for t in targets]
    assert reader.record_starts(path, targets) == expected
    old = reader.BLOCK
    try:  # blocks smaller than a record: the state carries across blocks
        reader.BLOCK = 5
        assert reader.record_starts(path, targets) == expected
    finally:
        reader.BLOCK = old


def test_header_only_file_is_the_same_error_everywhere(tmp_path: Path, chunked: None) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("note,sex,race,qualified,advanced\n")
    spec = _spec(path.name)
    parsed, _ = parse_spec(spec)
    assert sharding.plan_csv_shards(path, shard_rows=10, max_shards=8) == []
    with pytest.raises(AuditInputError) as merged:
        sharding.results_from_parts(spec, [], audit_id="x", path=path)
    with pytest.raises(AuditInputError) as whole:
        compute_results(spec, base_dir=tmp_path)
    assert str(merged.value) == str(whole.value) == "dataset.path: empty.csv has no rows"


def test_a_byte_shard_error_names_the_row_in_the_whole_file(tmp_path: Path) -> None:
    frame = _frame(600)
    frame["advanced"] = frame["advanced"].astype("Float64")
    frame.loc[450, "advanced"] = None
    path = _write_csv(frame, tmp_path / "pool.csv", variant="lf")
    spec = _spec(path.name)
    parsed, _ = parse_spec(spec)
    shards = sharding.plan_csv_shards(path, shard_rows=100, max_shards=8)
    assert len(shards) >= 4
    errors = []
    for shard in shards:
        try:
            data_mod.count_chunks(parsed.dataset, path, shard=shard, chunk_rows=64, max_levels=99)
        except AuditInputError as exc:
            errors.append(str(exc))
    with pytest.raises(AuditInputError) as whole:
        compute_results(spec, base_dir=tmp_path)
    assert len(errors) == 1 and "first at row 450" in errors[0]
    assert errors[0] == str(whole.value)


def test_a_path_dataset_takes_its_row_count_from_the_parquet_footer(tmp_path: Path) -> None:
    path = tmp_path / "pool.parquet"
    _frame(500).to_parquet(path, row_group_size=100)
    parsed, _ = parse_spec(_spec(path.name))
    assert sharding.count_rows(parsed, path) == 500
    big = 1 << 40  # the file is far under the byte threshold: only the footer's rows count
    assert sharding.should_shard(parsed, path, rows=None, threshold_rows=499, threshold_bytes=big)
    assert not sharding.should_shard(
        parsed, path, rows=None, threshold_rows=500, threshold_bytes=big
    )


def test_files_that_cannot_be_split_say_why(tmp_path: Path) -> None:
    one_group = tmp_path / "one.parquet"
    _frame(300).to_parquet(one_group, row_group_size=1000)
    packed = tmp_path / "pool.csv.gz"
    _frame(300).to_csv(packed, index=False)
    for path, why in ((one_group, "one Parquet row group"), (packed, "compressed CSV")):
        parsed, _ = parse_spec(_spec(path.name))
        assert len(sharding.plan_for(parsed, path, rows=None, shard_rows=50, max_shards=8)) == 1
        assert why in sharding.not_split_reason(parsed, path)


def test_the_merge_takes_the_stored_sha256_instead_of_hashing(tmp_path: Path) -> None:
    path = _write_csv(_frame(400), tmp_path / "pool.csv", variant="lf")
    spec = _spec(path.name)
    parsed, _ = parse_spec(spec)
    parts = [
        data_mod.count_chunks(parsed.dataset, path, shard=s, chunk_rows=64, max_levels=99)
        for s in sharding.plan_csv_shards(path, shard_rows=100, max_shards=8)
    ]
    stored = "ab" * 32
    doc = sharding.results_from_parts(spec, parts, audit_id="x", path=path, sha256=stored)
    assert doc["dataset"]["sha256"] == stored
    doc = sharding.results_from_parts(spec, parts, audit_id="x", path=path)
    assert doc["dataset"]["sha256"] == data_mod.file_sha256(path)
