"""An uploaded CSV file's columnar copy gives the same results.json, value for value.

The copy (:mod:`audit.engine.columnar`) holds raw text; the reader types it with the
function that types a CSV file's columns. Awkward files (quoted commas and line breaks,
CRLF, pandas' NA spellings, True/False labels, integers with missing values, ``25`` and
``25.0`` as two groups, weights) are audited from the CSV file and from its copy, in
memory, in chunks and in shards, and every value must be equal (bootstrap CIs included).
A file the converter refuses gets no copy and is audited as before.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from audit.engine import columnar, reader
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from audit.settings import get_settings
from tests.audit.test_shard_reading import _sharded

FILE_FIELDS = ("path", "shards", "chunked", "columnar")
NA = ["NA", "", "n/a", "NULL", "nan", "None", "<NA>", "#N/A"]


def _awkward(path: Path, *, n: int = 1800, seed: int = 3, crlf: bool = False) -> Path:
    """A CSV file with every awkwardness the reader handles (see the module docstring)."""
    rng = np.random.default_rng(seed)
    race = rng.choice(['Black, or "B"', "White\nsecond line", "Asian", "NA", ""], size=n)
    age = rng.choice(["25", "25.0", "30", "n/a", "None"], size=n)
    label = rng.choice(["True", "False", "TRUE", "false"], size=n, p=[0.3, 0.3, 0.2, 0.2])
    pred = rng.choice(["1", "0", '"1"'], size=n, p=[0.45, 0.45, 0.1])
    weight = (rng.integers(1, 24, size=n) / 8).astype(str)  # eighths: sums add exactly
    sex = rng.choice(["F", "M"], size=n)
    lines = ["sex,race,age,label,pred,w"]
    for i in range(n):
        quoted = race[i].replace('"', '""')
        lines.append(f'{sex[i]},"{quoted}",{age[i]},{label[i]},{pred[i]},{weight[i]}')
    text = "\n".join(lines) + "\n"
    path.write_bytes(text.replace("\n", "\r\n").encode() if crlf else text.encode())
    return path


def _spec(name: str) -> dict[str, Any]:
    return {
        "name": "columnar",
        "domain": "hiring",
        "dataset": {
            "path": name,
            "label": "label",
            "prediction": "pred",
            "weight": "w",
            "favorable_label": 1,
            "protected": ["sex", "race", "age"],
        },
        "probes": [
            {"kind": "demographic", "intersectional": True, "bootstrap": 100},
            {"kind": "demographic", "attributes": ["age"]},
        ],
    }


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for key in ("id", "started_at", "finished_at"):
        doc["audit"].pop(key)
    for key in FILE_FIELDS:
        doc["dataset"].pop(key, None)
    return doc


def _convert(path: Path) -> Path:
    copy = columnar.copy_path(path)
    columnar.convert_csv(path, copy, row_group_rows=250, sha256="x")
    return copy


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> Any:
    """In-process runs read every file in chunks (the engine's large-file path)."""

    def on() -> None:
        monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
        monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "128")
        get_settings.cache_clear()

    yield on
    get_settings.cache_clear()


@pytest.mark.parametrize("crlf", [False, True])
def test_copy_gives_every_value_of_the_csv_results(
    tmp_path: Path, crlf: bool, chunked: Any
) -> None:
    path = _awkward(tmp_path / "log.csv", crlf=crlf)
    spec = _spec(path.name)
    in_memory = compute_results(spec, audit_id="a", base_dir=tmp_path)
    sharded_csv = _sharded(spec, path, shard_rows=170)
    assert sharded_csv["dataset"]["shards"] > 1 and "columnar" not in sharded_csv["dataset"]
    copy = _convert(path)
    assert pq.ParquetFile(copy).metadata.num_row_groups == 8  # 1800 rows, groups of 250
    assert set(pq.read_schema(copy).types) == {pq.read_schema(copy).types[0]}  # all text
    sharded_copy = _sharded(spec, path, shard_rows=170)
    assert sharded_copy["dataset"]["columnar"] is True
    assert sharded_copy["dataset"]["shards"] == 8  # the copy's row groups
    # a small file is read whole, from the CSV file, copy or not
    assert "columnar" not in compute_results(spec, audit_id="a", base_dir=tmp_path)["dataset"]
    chunked()
    from_copy = compute_results(spec, audit_id="a", base_dir=tmp_path)
    assert from_copy["dataset"]["columnar"] is True and from_copy["dataset"]["chunked"] is True
    copy.unlink()
    from_csv = compute_results(spec, audit_id="a", base_dir=tmp_path)
    assert "columnar" not in from_csv["dataset"]
    expected = _values(in_memory)
    ages = [p for p in expected["probes"] if p["attribute"] == "age"]
    groups = {g["group"] for p in ages for g in p["groups"]}
    assert {"25", "25.0", "unknown"} <= groups  # raw text: two groups, NA spellings unknown
    assert from_copy["dataset"]["sha256"] == in_memory["dataset"]["sha256"]  # the original's
    for doc in (sharded_csv, sharded_copy, from_copy, from_csv):
        assert _values(doc) == expected


def test_gzip_upload_is_sharded_through_its_copy(tmp_path: Path) -> None:
    plain = _awkward(tmp_path / "log.csv", n=900)
    packed = tmp_path / "log.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    spec = _spec(packed.name)
    one = _sharded(spec, packed, shard_rows=100)
    assert one["dataset"]["shards"] == 1  # a stream: never split
    _convert(packed)
    split = _sharded(spec, packed, shard_rows=100)
    assert split["dataset"]["shards"] == 4 and split["dataset"]["columnar"] is True
    assert _values(split) == _values(one)


def test_typing_is_one_function_for_csv_and_copy(tmp_path: Path) -> None:
    import pyarrow as pa

    from audit.engine import csv_reader

    values = pa.array(["1", None, "0"])  # integers with missing values
    assert csv_reader.typed_values(values).to_pylist() == [1, None, 0]
    assert csv_reader.typed_values(values).type == pa.int64()
    assert csv_reader.typed_values(pa.array(["True", "false", None])).to_pylist() == [
        True,
        False,
        None,
    ]
    assert csv_reader.typed_values(pa.array(["1.5", "2"])).type == pa.float64()
    assert csv_reader.typed_values(pa.array(["yes", "1"])).to_pylist() == ["yes", "1"]


GOOD = "".join(
    f"{'FM'[i % 2]},{'AB'[i % 3 % 2]},{25 + i % 2},{i % 3 % 2},{i % 2},1\n" for i in range(80)
)


@pytest.mark.parametrize(
    "body, name",
    [
        (f"sex,race,age,label,pred,w\n{GOOD}M,B,30,1,0,1,EXTRA\n".encode(), "ragged"),
        (f"sex,race,age,label,pred,w\n{GOOD}".encode() + b"F,\xff\xfe,25,1,1,1\n", "bad-utf8"),
    ],
)
def test_refused_file_gets_no_copy_and_is_read_as_before(
    tmp_path: Path, body: bytes, name: str, chunked: Any
) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(body)
    with pytest.raises(columnar.ConversionRefused, match=path.name):
        _convert(path)
    assert not columnar.copy_path(path).exists()
    assert list(tmp_path.iterdir()) == [path]  # no temp file left
    chunked()
    spec = _spec(path.name)
    if name == "bad-utf8":  # pandas refuses it, as without a copy
        with pytest.raises((AuditInputError, UnicodeDecodeError)):
            compute_results(spec, audit_id="a", base_dir=tmp_path)
        return
    # read from the CSV file (no copy): the row with a field too many is named, as when
    # pandas reads the file whole (in chunks it must not be counted with the field dropped)
    with pytest.raises(AuditInputError, match=r"row 80 \(line 82 of the file\) has more fields"):
        compute_results(spec, audit_id="a", base_dir=tmp_path)


def test_stale_copy_is_not_read(tmp_path: Path) -> None:
    path = _awkward(tmp_path / "log.csv", n=300)
    copy = _convert(path)
    assert columnar.usable(path) == copy
    with open(path, "ab") as f:
        f.write(b"F,A,30,True,1,1.0\n")  # the file changed: the copy is of another size
    assert columnar.usable(path) is None
    ds = parse_spec(_spec(path.name))[0].dataset
    rows = sum(len(c) for c in reader.read_chunks(ds, path, chunk_rows=100))
    assert rows == 301


def test_errors_name_the_same_row_from_the_copy(tmp_path: Path) -> None:
    """A bad value read from the copy (in-process or a row-group shard) is named by its
    row in the whole file, as when the CSV file is read."""
    from audit.engine.data import count_chunks

    lines = [f"{'FM'[i % 2]},r{i % 3},{i % 4},{i % 2},{i // 2 % 2},1" for i in range(500)]
    lines[377] = "F,r1,3,1,,1"  # a missing prediction, row 377 of the file
    path = tmp_path / "missing.csv"
    path.write_text("sex,race,age,label,pred,w\n" + "\n".join(lines) + "\n")
    ds = parse_spec(_spec(path.name))[0].dataset
    with pytest.raises(AuditInputError) as from_csv:
        count_chunks(ds, path, chunk_rows=50, max_levels=100)
    _convert(path)  # row groups of 250: the bad row is in the second
    with pytest.raises(AuditInputError) as whole:
        count_chunks(ds, path, chunk_rows=50, max_levels=100)
    with pytest.raises(AuditInputError) as shard:
        count_chunks(
            ds, path, chunk_rows=50, max_levels=100, shard=reader.Shard(1, 250, 500, "rows")
        )
    assert "first at row 377" in str(from_csv.value)
    assert str(whole.value) == str(shard.value) == str(from_csv.value)


def test_shards_planned_before_the_copy_read_the_csv_file(tmp_path: Path) -> None:
    """An audit planned before the copy existed (byte shards) reads the CSV file even
    when the copy appears meanwhile; its results are the same and do not claim the copy."""
    import json as json_mod

    from audit.engine import sharding
    from audit.engine.data import count_chunks

    path = _awkward(tmp_path / "log.csv", n=900)
    spec = _spec(path.name)
    parsed, _ = parse_spec(spec)
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=200, max_shards=64)
    assert {s.unit for s in shards} == {"bytes"}
    _convert(path)  # the copy arrives while the shards wait in the queue
    parts = [
        count_chunks(parsed.dataset, path, shard=s, chunk_rows=97, max_levels=1000) for s in shards
    ]
    parts = json_mod.loads(json_mod.dumps(parts))
    doc = sharding.results_from_parts(spec, parts, audit_id="x", path=path)
    assert "columnar" not in doc["dataset"]
    assert _values(doc) == _values(_sharded(spec, path, shard_rows=200))  # = from the copy
