"""CSV parsed by pyarrow reads what pandas read, value for value, whole or in byte shards.

Awkward files (quotes, commas and line breaks inside quotes, CRLF, no final line
break, header only, pandas' missing-value spellings, True/False labels, numbers as
group names, a BOM, integers with missing values) are read by the pyarrow path
(whole file and every record-start shard) and by pandas' ``read_csv`` as before; the
prepared groups, labels and predictions must be equal row for row, and so must the
messages that name a row. Labels and predictions are typed per chunk from raw text
(a word after a block of integers is no refusal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.engine import csv_reader, reader
from audit.engine.data import count_chunks, prepare
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError

HEADER = "sex,race,age,label,pred\n"
ROWS = [
    'F,"Black, or ""B""",25,1,1',
    'M,"White\nsecond line",25.0,0,1',
    "F,NA,30,1,0",
    'M,"NA",,0,0',
    "F,<NA>,None,1,1",
    "M,n/a,null,0,1",
    "F, ,#N/A,1,0",
    "M,nan,NaN,1,1",
    "F,Asian,-nan,0,0",
    "M,Black,N/A,1,1",
]


def _dataset(path: Path, **extra: Any) -> Any:
    spec = {
        "name": "csv-arrow",
        "domain": "hiring",
        "dataset": {
            "path": str(path),
            "label": "label",
            "prediction": "pred",
            "protected": ["sex", "race", "age"],
            **extra,
        },
        "probes": [{"kind": "demographic"}],
    }
    return parse_spec(spec)[0].dataset


def _write(path: Path, text: str, *, crlf: bool = False, bom: bool = False) -> Path:
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def _pandas(ds: Any, path: Path) -> pd.DataFrame:
    """The reference: pandas' read_csv as the engine read a whole file before pyarrow
    (``read_frame``: protected columns as text; pandas' ``category`` read '25.0' for 25)."""
    cols = reader.needed_columns(ds, [])
    text = {c: str for c in ds.protected}
    frames = list(
        csv_reader.pandas_chunks(path, skip_given=0, chunk_rows=3, usecols=cols, dtype=text)
    )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _prepared(ds: Any, frames: list[pd.DataFrame]) -> list[tuple[Any, ...]]:
    """Every row as (group of each protected column, label, prediction) after ``prepare``."""
    rows: list[tuple[Any, ...]] = []
    for frame in frames:
        out, y_true, y_pred, _, _ = prepare(frame, ds, need_prediction=True)
        groups = [out[c].astype(str).tolist() for c in ds.protected]
        assert y_true is not None and y_pred is not None
        rows.extend(zip(*groups, y_true.tolist(), y_pred.tolist()))
    return rows


def _shard_frames(ds: Any, path: Path, cuts: list[int]) -> list[pd.DataFrame]:
    """The file read as byte shards starting at the record starts after ``cuts``."""
    data_start = reader.record_starts(path, [0])[0]
    size = path.stat().st_size
    bounds = sorted({data_start, *reader.record_starts(path, cuts), size})
    frames: list[pd.DataFrame] = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        frames += reader.read_chunks(ds, path, chunk_rows=2, shard=reader.Shard(i, a, b, "bytes"))
    return frames


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows pyarrow had given each time the reader fell back to pandas."""
    calls: list[int] = []
    real = csv_reader.pandas_chunks

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["skip_given"])
        return real(*args, **kwargs)

    monkeypatch.setattr(csv_reader, "pandas_chunks", spy)
    return calls


def test_missing_value_spellings_are_pandas_defaults() -> None:
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(csv_reader.NA_VALUES) == set(STR_NA_VALUES)


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("final_newline", [False, True])
@pytest.mark.parametrize("bom", [False, True])
def test_awkward_csv_reads_as_pandas_did(
    tmp_path: Path, crlf: bool, final_newline: bool, bom: bool, fallbacks: list[int]
) -> None:
    text = HEADER + "\n".join(ROWS) + ("\n" if final_newline else "")
    path = _write(tmp_path / "awkward.csv", text, crlf=crlf, bom=bom)
    ds = _dataset(path)
    expected = _prepared(ds, [_pandas(ds, path)])
    assert len(expected) == len(ROWS)
    assert expected[0][1] == 'Black, or "B"'
    assert expected[1][1] == ("White\r\nsecond line" if crlf else "White\nsecond line")
    assert {r[2] for r in expected} >= {"25", "25.0", "unknown"}  # text, as before
    whole = list(reader.read_chunks(ds, path, chunk_rows=4))
    assert _prepared(ds, whole) == expected
    size = path.stat().st_size
    for step in (1, 7, 23):
        assert _prepared(ds, _shard_frames(ds, path, list(range(0, size, step)))) == expected
    assert fallbacks == [0]  # the reference's own call: pyarrow read every range


def test_true_false_labels_and_integers_with_missing_values(tmp_path: Path) -> None:
    text = "sex,race,age,label,pred,w\n" + "\n".join(
        f"{'FM'[i % 2]},r{i % 3},{i % 4},{['True', 'False'][i % 2]},"
        f"{['true', 'FALSE'][i // 2 % 2]},{'' if i % 5 == 0 else i}"
        for i in range(40)
    )
    path = _write(tmp_path / "bool.csv", text + "\n")
    ds = _dataset(path, favorable_label=True)
    frames = list(reader.read_chunks(ds, path, chunk_rows=16, extra=["w"]))
    assert [len(f) for f in frames] == [16, 16, 8]
    assert frames[0]["label"].dtype == bool and frames[0]["pred"].dtype == bool
    whole = pd.concat(frames, ignore_index=True)
    before = pd.read_csv(path)
    assert whole["w"].dtype == before["w"].dtype == np.float64
    pd.testing.assert_series_equal(whole["w"], before["w"])
    assert _prepared(ds, frames) == _prepared(ds, [_pandas(ds, path)])


@pytest.mark.parametrize("text", [HEADER, HEADER.rstrip("\n")])
def test_header_only_has_no_rows(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path / "empty.csv", text)
    ds = _dataset(path)
    assert list(reader.read_chunks(ds, path, chunk_rows=10)) == []
    part = count_chunks(ds, path, chunk_rows=10, max_levels=100)
    assert part["rows"] == 0 and part["counts"] is None


def test_a_value_of_another_type_later_needs_no_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallbacks: list[int]
) -> None:
    """Columns come as raw text and are typed per chunk (csv_reader.typed_table, shared
    with the columnar copy): a label typed as integers in the first block and a word
    later is no refusal; the rows are pandas' still."""
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 256)  # small blocks
    lines = [f"{'FM'[i % 2]},r{i % 3},{i % 4},{i % 2},{i // 2 % 2}" for i in range(300)]
    lines[250] = "F,r1,3,yes,1"  # not an integer
    path = _write(tmp_path / "mixed.csv", HEADER + "\n".join(lines) + "\n")
    ds = _dataset(path, favorable_label=1)
    frames = list(reader.read_chunks(ds, path, chunk_rows=64))
    assert sum(len(f) for f in frames) == 300
    assert fallbacks == []  # pyarrow read every row
    assert _prepared(ds, frames) == _prepared(ds, [_pandas(ds, path)])


def test_errors_name_the_row_in_the_whole_file(tmp_path: Path) -> None:
    lines = [f"{'FM'[i % 2]},r{i % 3},{i % 4},{i % 2},{i // 2 % 2}" for i in range(500)]
    lines[377] = "F,r1,3,1,"  # a missing prediction, row 377 of the file
    path = _write(tmp_path / "missing.csv", HEADER + "\n".join(lines) + "\n")
    ds = _dataset(path)
    with pytest.raises(AuditInputError) as whole:
        count_chunks(ds, path, chunk_rows=50, max_levels=100)
    size = path.stat().st_size
    start, stop = reader.record_starts(path, [size // 2, size])
    with pytest.raises(AuditInputError) as shard:
        count_chunks(
            ds, path, chunk_rows=50, max_levels=100, shard=reader.Shard(1, start, stop, "bytes")
        )
    assert "first at row 377" in str(whole.value)
    assert str(shard.value) == str(whole.value)


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".csv.xz"])
def test_compressed_csv_reads_as_pandas_did(tmp_path: Path, suffix: str) -> None:
    plain = _write(tmp_path / "plain.csv", HEADER + "\n".join(ROWS) + "\n")
    path = tmp_path / f"packed{suffix}"
    pd.read_csv(plain, dtype=str, keep_default_na=False).to_csv(path, index=False)
    ds = _dataset(path)
    expected = _prepared(ds, [_pandas(ds, plain)])
    assert _prepared(ds, list(reader.read_chunks(ds, path, chunk_rows=4))) == expected


@pytest.mark.parametrize("extra", [",EXTRA", ",EXTRA,MORE"])
@pytest.mark.parametrize("at", [0, 251, 377])
def test_a_row_with_more_fields_than_the_header_is_refused_by_name(
    tmp_path: Path, extra: str, at: int
) -> None:
    """Read whole, pandas refuses such a row; read in chunks or shards it must not be
    counted with its extra fields dropped (pandas given ``names`` drops them)."""
    lines = [f"{'FM'[i % 2]},r{i % 3},{i % 4},{i % 2},{i // 2 % 2}" for i in range(500)]
    lines[at] += extra
    path = _write(tmp_path / "ragged.csv", HEADER + "\n".join(lines) + "\n")
    ds = _dataset(path)
    if at:  # pandas reading it whole refuses it (on the first row it takes an index)
        with pytest.raises(pd.errors.ParserError):
            pd.read_csv(path)
    with pytest.raises(AuditInputError) as whole:
        count_chunks(ds, path, chunk_rows=50, max_levels=100)
    expected = f"row {at} (line {at + 2} of the file) has more fields than the header's 5"
    assert str(whole.value).endswith(expected), whole.value
    size = path.stat().st_size
    cuts = reader.record_starts(path, [0, size // 2, size])
    messages = []
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        shard = reader.Shard(i, a, b, "bytes")
        try:
            count_chunks(ds, path, chunk_rows=50, max_levels=100, shard=shard)
        except AuditInputError as exc:
            messages.append(str(exc))
    assert messages == [str(whole.value)]  # only the shard holding the row, named alike
