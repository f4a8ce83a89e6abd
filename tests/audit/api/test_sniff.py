"""The upload sniffer on its own: pickles that parse as CSV, wide headers, levels, time bounds."""

from __future__ import annotations

import gzip
import io
import pickle
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from audit.api.levels import LEVELS_CAP, LevelCounter
from audit.api.pickles import pickle_reason
from audit.api.sniff import Limits, SniffStopped, UploadRejected, sniff_upload

LIMITS = Limits(max_rows=1_000_000, max_decompressed=50_000_000)
POLYGLOT = b"cos\nsystem\n(S'touch /tmp/never'\ntR."


def _write(tmp_path: Path, data: bytes, name: str = "up.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", data)
    return buffer.getvalue()


def test_the_polyglot_is_valid_csv_and_a_pickle() -> None:
    frame = pd.read_csv(io.BytesIO(POLYGLOT))
    assert list(frame.columns) == ["cos"] and len(frame) == 3  # what made it dangerous


@pytest.mark.parametrize(
    "data",
    [
        POLYGLOT,
        POLYGLOT[:-1],  # no STOP: the REDUCE would still run before the error
        b"S'" + b"A" * 200_000 + b"'\n0" + POLYGLOT,  # padding before the import
        b"(ios\nsystem\nS'id'\n.",  # INST
        pickle.dumps({"a": [1, 2]}, protocol=0),  # complete, imports nothing
        pickle.dumps(io.BytesIO, protocol=1),
    ],
)
def test_pickle_streams_are_recognised(data: bytes) -> None:
    assert pickle_reason(io.BytesIO(data)) is not None


@pytest.mark.parametrize(
    "data",
    [
        b"id,sex,race\n1,female,Black\n2,male,White\n",
        b"city,sex\nBoston,f\nChicago,m\n",
        b"".join(b"Paris,%d\nVienna,%d\n" % (i, i) for i in range(20_000)),  # parses long
        "nom,ville\nÉlodie,Montréal\n".encode(),
    ],
)
def test_csv_files_are_not_pickles(data: bytes) -> None:
    assert pickle_reason(io.BytesIO(data)) is None


@pytest.mark.parametrize(
    "wrap", [lambda d: d, gzip.compress, _zip, lambda d: pickle.dumps(d, protocol=4)]
)
def test_pickle_uploads_are_415_in_every_wrapping(tmp_path: Path, wrap: object) -> None:
    path = _write(tmp_path, wrap(POLYGLOT))  # type: ignore[operator]
    with pytest.raises(UploadRejected) as err:
        sniff_upload(path, limits=LIMITS)
    assert err.value.status_code == 415 and "pickle" in err.value.detail


def test_a_million_columns_are_refused_at_the_header_limit_quickly(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(1_000_000)).encode()
    path = _write(tmp_path, header + b"\n" + b"1" * 10 + b"\n")
    start = time.perf_counter()
    with pytest.raises(UploadRejected) as err:
        sniff_upload(path, limits=LIMITS)
    assert time.perf_counter() - start < 1.0
    assert err.value.status_code == 413 and "BIASAUDIT_MAX_CSV_HEADER_BYTES" in err.value.detail


def test_columns_over_the_limit_and_duplicates_in_linear_time(tmp_path: Path) -> None:
    wide = ",".join(f"c{i}" for i in range(2_001)).encode() + b"\n" + b"1\n"
    with pytest.raises(UploadRejected) as err:
        sniff_upload(_write(tmp_path, wide), limits=LIMITS)
    assert err.value.status_code == 413 and "BIASAUDIT_MAX_COLUMNS=2000" in err.value.detail
    # 40,000 columns, all duplicated: the old pairwise check took about 40 s
    names = [f"c{i % 20_000}" for i in range(40_000)]
    dupes = ",".join(names).encode() + b"\n" + b"1\n"
    start = time.perf_counter()
    with pytest.raises(UploadRejected) as err:
        sniff_upload(_write(tmp_path, dupes), limits=Limits(1000, 10**8, max_columns=50_000))
    assert time.perf_counter() - start < 2.0
    assert err.value.status_code == 422 and "duplicate column names: c0, c1" in err.value.detail
    assert "(and 19980 more)" in err.value.detail


def test_levels_are_counted_per_column_and_capped(tmp_path: Path) -> None:
    lines = ["id,sex,note,short"]
    for i in range(3_000):
        sex = ("female", "male", "", "NA")[i % 4]  # both NA spellings are one missing value
        lines.append(f"{i},{sex},n{i % 7}" + ("" if i % 2 else ",x"))
    data = ("\n".join(lines) + "\n").encode()
    for blob, name in ((data, "a.csv"), (gzip.compress(data), "a.csv.gz")):
        sniffed = sniff_upload(_write(tmp_path, blob, name), limits=LIMITS)
        assert sniffed.rows == 3_000
        assert sniffed.levels == {"id": LEVELS_CAP + 1, "sex": 3, "note": 7, "short": 2}


def test_parquet_levels(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": range(2_000), "group": ["a", "b", None, "c"] * 500})
    path = tmp_path / "x.parquet"
    frame.to_parquet(path, row_group_size=300)
    sniffed = sniff_upload(path, limits=LIMITS)
    assert (sniffed.format, sniffed.rows) == ("parquet", 2_000)
    assert sniffed.levels == {"id": LEVELS_CAP + 1, "group": 4}


def test_level_counter_pads_short_records() -> None:
    counter = LevelCounter(["a", "b"], cap=3)
    counter.add([["1", "x"], ["2"], ["3", "y", "extra"], ["4", "z"], ["5", "w"]])
    assert counter.result() == {"a": 4, "b": 4}  # b: x, y, z, w (+ missing) -> capped at 4


def test_the_check_is_bounded_in_time_and_stops_when_asked(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%d\n" % (i, i % 3) for i in range(200_000))
    path = _write(tmp_path, b"a,b\n" + rows)
    with pytest.raises(UploadRejected) as err:
        sniff_upload(path, limits=Limits(10**6, 10**8, seconds=0.001))
    assert err.value.status_code == 413 and "BIASAUDIT_SNIFF_TIMEOUT" in err.value.detail
    stop = threading.Event()
    stop.set()
    start = time.perf_counter()
    with pytest.raises(SniffStopped):
        sniff_upload(path, limits=LIMITS, stop=stop)
    assert time.perf_counter() - start < 1.0


def test_stale_upload_files_of_killed_processes_are_removed(tmp_path: Path) -> None:
    import os

    from audit.api.uploads import remove_stale_uploads
    from audit.settings import Settings

    settings = Settings(artifact_dir=tmp_path)
    folder = settings.data_path / "acme"
    folder.mkdir(parents=True)
    old, fresh, kept = (folder / n for n in (".a.upload.tmp", ".b.upload.tmp", "c.csv"))
    for path in (old, fresh, kept):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    os.utime(kept, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    unpacking = folder / "models" / ".d.unpack.tmp"
    (unpacking / "sub").mkdir(parents=True)
    (unpacking / "sub" / "config.json").write_bytes(b"{}")
    os.utime(unpacking, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    assert remove_stale_uploads(settings) == 2
    assert sorted(p.name for p in folder.iterdir()) == [".b.upload.tmp", "c.csv", "models"]
    assert list((folder / "models").iterdir()) == []
