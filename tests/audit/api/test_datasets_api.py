"""Dataset uploads: streamed, hashed, sniffed, limited, atomic; every bad input has its status."""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Dataset
from tests.audit.api.conftest import (
    MAX_DECOMPRESSED_BYTES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_ROWS,
)
from tests.audit.api.helpers import auth, make_csv, upload

pytestmark = pytest.mark.postgres


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("submitter")


def _folder(settings: Settings) -> Path:
    return settings.data_path / "acme"


def _dataset_rows(settings: Settings) -> int:
    with db.session_scope(settings.db_url) as session:
        return session.query(Dataset).count()


def assert_nothing_stored(settings: Settings) -> None:
    folder = _folder(settings)
    leftovers = list(folder.iterdir()) if folder.exists() else []
    assert leftovers == [], f"files left behind: {leftovers}"
    assert _dataset_rows(settings) == 0


def test_csv_upload_is_hashed_counted_and_stored_atomically(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    data = make_csv(400)
    response = upload(client, token, data, name="../../etc/passwd")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["rows"] == 400 == len(pd.read_csv(io.BytesIO(data)))
    assert body["columns"] == ["sex", "race", "qualified", "advanced"]
    assert body["size_bytes"] == len(data)
    assert "path" not in body
    stored = _folder(api_settings) / f"{body['id']}.csv"
    assert stored.read_bytes() == data
    assert [p.name for p in _folder(api_settings).iterdir()] == [stored.name]  # no temp file
    again = client.get(f"/v1/datasets/{body['id']}", headers=auth(token))
    assert again.status_code == 200
    assert again.json() == body


def test_quoted_newlines_and_blank_lines_count_like_pandas(client: TestClient, token: str) -> None:
    data = b'sex,note,advanced\nfemale,"two\nlines",1\n\nmale,"a,b",0\nmale,x,1\n'
    response = upload(client, token, data)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == len(pd.read_csv(io.BytesIO(data))) == 3


def test_gzip_zip_and_parquet_are_accepted(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    data = make_csv(300)
    frame = pd.read_csv(io.BytesIO(data))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("applicants.csv", data)
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    cases = [
        (gzip.compress(data), "a.csv.gz", "application/gzip", ".csv.gz"),
        (zipped.getvalue(), "a.zip", "application/zip", ".csv.zip"),
        (parquet.getvalue(), "a.parquet", "application/octet-stream", ".parquet"),
    ]
    for content, name, ctype, ext in cases:
        response = upload(client, token, content, name=name, ctype=ctype)
        assert response.status_code == 201, (name, response.text)
        body = response.json()
        assert body["rows"] == 300
        assert body["columns"] == list(frame.columns)
        assert body["sha256"] == hashlib.sha256(content).hexdigest()
        stored = _folder(api_settings) / f"{body['id']}{ext}"
        # the engine reads what the API stored
        reread = pd.read_parquet(stored) if ext == ".parquet" else pd.read_csv(stored)
        pd.testing.assert_frame_equal(reread, frame)


def test_oversized_upload_is_413_and_leaves_nothing(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    data = b"a,b\n" + b"1,2\n" * (MAX_UPLOAD_BYTES // 4 + 10)
    response = upload(client, token, data)
    assert response.status_code == 413
    assert response.json()["field"] == "file"
    assert "BIASAUDIT_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert_nothing_stored(api_settings)


def test_oversized_chunked_upload_without_length_stops_while_streaming(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    boundary = "testboundary"
    sent = []

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.csv"\r\nContent-Type: text/csv\r\n\r\na,b\n'
        ).encode()
        for _ in range(MAX_UPLOAD_BYTES // 8192 + 20):
            sent.append(1)
            yield b"1,2\n" * 2048
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/datasets",
        content=body(),
        headers={**auth(token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert_nothing_stored(api_settings)


def test_too_many_rows_is_413(client: TestClient, token: str, api_settings: Settings) -> None:
    data = b"a\n" + b"1\n" * (MAX_UPLOAD_ROWS + 1)
    assert len(data) < MAX_UPLOAD_BYTES
    response = upload(client, token, data)
    assert response.status_code == 413
    assert "BIASAUDIT_MAX_UPLOAD_ROWS" in response.json()["detail"]
    assert_nothing_stored(api_settings)


def _bomb_csv() -> bytes:
    """Few rows (under the row limit), each long: twice the decompressed limit in all."""
    row = b"0" * 20_000 + b",0\n"
    return b"a,b\n" + row * (2 * MAX_DECOMPRESSED_BYTES // len(row))


def test_gzip_bomb_is_413(client: TestClient, token: str, api_settings: Settings) -> None:
    bomb = gzip.compress(_bomb_csv(), compresslevel=9)
    assert len(bomb) < MAX_UPLOAD_BYTES
    response = upload(client, token, bomb, name="x.csv.gz", ctype="application/gzip")
    assert response.status_code == 413
    assert "decompress" in response.json()["detail"]
    assert_nothing_stored(api_settings)


def test_zip_bomb_is_413_and_a_forged_size_is_refused(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    payload = _bomb_csv()
    honest = io.BytesIO()
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.csv", payload)
    response = upload(client, token, honest.getvalue(), name="x.zip", ctype="application/zip")
    assert response.status_code == 413
    assert "decompress" in response.json()["detail"]
    # forge the declared uncompressed size (local header and central directory) to 100
    # bytes: the declared-size check passes, but decompression stops at the declared size
    # and the CRC no longer matches, so it is still refused
    size = len(payload).to_bytes(4, "little")
    lying = honest.getvalue().replace(size, (100).to_bytes(4, "little"))
    assert lying != honest.getvalue()
    response = upload(client, token, lying, name="x.zip", ctype="application/zip")
    assert response.status_code == 415
    assert "corrupt" in response.json()["detail"]
    assert_nothing_stored(api_settings)


def test_parquet_bomb_is_413(client: TestClient, token: str, api_settings: Settings) -> None:
    frame = pd.DataFrame({"a": [0] * (MAX_DECOMPRESSED_BYTES // 8 + 1000)})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd", use_dictionary=False)
    assert len(buffer.getvalue()) < MAX_UPLOAD_BYTES
    response = upload(
        client, token, buffer.getvalue(), name="x.parquet", ctype="application/octet-stream"
    )
    assert response.status_code == 413
    assert "decompress" in response.json()["detail"]
    assert_nothing_stored(api_settings)


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("content", "name", "ctype", "words"),
    [
        (PNG, "data.csv", "text/csv", "PNG"),  # the bytes decide, not the name or header
        (bytes(range(256)) * 8, "data.csv", "text/csv", "binary"),
        ("é,ü\n".encode("latin-1") * 50, "data.csv", "text/csv", "UTF-8"),
        (make_csv(50), "data.csv", "image/png", "image/png"),  # declared type is refused too
        (b"%PDF-1.4 ...", "report.pdf", "application/pdf", "application/pdf"),
        (b"BZh91AY&SY" + b"\x00" * 50, "x.csv.bz2", "application/octet-stream", "bzip2"),
    ],
)
def test_wrong_content_type_is_415(
    client: TestClient,
    token: str,
    api_settings: Settings,
    content: bytes,
    name: str,
    ctype: str,
    words: str,
) -> None:
    response = upload(client, token, content, name=name, ctype=ctype)
    assert response.status_code == 415, response.text
    assert response.json()["field"] == "file"
    assert words in response.json()["detail"]
    assert_nothing_stored(api_settings)


def test_zip_with_several_files_is_415(
    client: TestClient, token: str, api_settings: Settings
) -> None:
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w") as archive:  # what an .xlsx looks like
        archive.writestr("[Content_Types].xml", "<xml/>")
        archive.writestr("xl/workbook.xml", "<xml/>")
    response = upload(client, token, content.getvalue(), name="x.xlsx", ctype="application/zip")
    assert response.status_code == 415
    assert "exactly one CSV" in response.json()["detail"]
    assert_nothing_stored(api_settings)


def test_not_multipart_is_415(client: TestClient, token: str) -> None:
    response = client.post(
        "/v1/datasets", content=make_csv(10), headers={**auth(token), "Content-Type": "text/csv"}
    )
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


@pytest.mark.parametrize(
    ("files", "detail"),
    [
        ({"other": ("x.csv", b"a\n1\n", "text/csv")}, "named 'file'"),
        ({"file": ("x.csv", b"", "text/csv")}, "empty"),
        ({"file": ("x.csv", b"a,b\n", "text/csv")}, "no data rows"),
        ({"file": ("x.csv", b"a,a\n1,2\n", "text/csv")}, "duplicate column names: a"),
    ],
)
def test_unusable_upload_is_422(
    client: TestClient, token: str, api_settings: Settings, files: dict, detail: str
) -> None:
    response = client.post("/v1/datasets", files=files, headers=auth(token))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "file"
    assert detail in response.json()["detail"]
    assert_nothing_stored(api_settings)


def test_unknown_dataset_is_404(client: TestClient, token: str) -> None:
    response = client.get("/v1/datasets/00000000-0000-4000-8000-000000000000", headers=auth(token))
    assert response.status_code == 404
    assert set(response.json()) >= {"detail", "field"}
