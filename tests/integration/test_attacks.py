"""A hostile client with a submitter token, against a real ``serve`` + ``worker``.

PostgreSQL, Redis, uvicorn and Celery are real (``tests/integration/conftest.py``).
Each test reproduces an attack that once worked and shows it refused or bounded:

- a protocol-0 pickle that is also a CSV (plain and gzip) never runs: the upload
  is 415, ``model.trusted`` is 422, and a worker handed such a spec anyway (a
  row written past the API) refuses it; the marker file the payload would
  create stays absent;
- a 10 MB header of a million columns is refused within 2 s, no temporary file;
- a client that leaves, or a server stopped, while an upload is being checked
  leaves no temporary file, and SIGTERM is not held up;
- oversized and slow request headers, stalled bodies, deep JSON, huge offsets,
  12,000 probes and a 200,000-level protected column are refused, fast.
"""

from __future__ import annotations

import gzip
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.storage import repo, session_scope
from tests.integration.conftest import Stack, wait_for, wait_status
from tests.workers.conftest import add_audit

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def _token(role: str = "submitter", project: str = "acme") -> str:
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project=project, role=role)
    return token


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[tuple[httpx.Client, Path]]:
    """One API for the module's attacks (each leaves it as it found it, which they check)."""
    service, base = stack.api(
        "attack-api",
        extra={"BIASAUDIT_REQUEST_HEADER_TIMEOUT": "2", "BIASAUDIT_REQUEST_BODY_TIMEOUT": "2"},
    )
    try:
        with session_scope(stack.env["BIASAUDIT_DATABASE_URL"]) as session:
            token, _ = repo.create_token(session=session, project="acme", role="submitter")
        headers = {"Authorization": f"Bearer {token}"}
        folder = Path(stack.env["BIASAUDIT_DATA_DIR"]) / "acme"
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            yield client, folder
    finally:
        stack.stop(service)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*")) if folder.exists() else []


def test_the_pickle_polyglot_never_runs(
    local: Stack, api: tuple[httpx.Client, Path], tmp_path: Path
) -> None:
    client, folder = api
    marker = tmp_path / "PWNED"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    before = _leftovers(folder)
    for name, data in (("model.csv", payload), ("model.csv.gz", gzip.compress(payload))):
        response = client.post("/v1/datasets", files={"file": (name, data, "text/csv")})
        assert response.status_code == 415, response.text
        assert "pickle" in response.json()["detail"]
    assert _leftovers(folder) == before  # nothing stored, no temporary file

    # The files exist anyway (an upload from before this check, a file an operator
    # copied): over HTTP, trusted is refused, and an upload is never a model.
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{uuid.uuid4()}.csv", f"{uuid.uuid4()}.csv.gz", "model.joblib"]
    (folder / names[0]).write_bytes(payload)
    (folder / names[1]).write_bytes(gzip.compress(payload))
    (folder / names[2]).write_bytes(payload)
    spec: dict[str, Any] = {
        "name": "attack",
        "model": {"kind": "sklearn", "path": names[0], "trusted": True},
        "probes": [{"kind": "counterfactual-tabular", "attribute": "sex"}],
        "dataset": {"path": names[0], "protected": ["sex"]},
    }
    response = client.post("/v1/audits", json=spec)
    assert response.status_code == 422 and response.json()["field"] == "model.trusted"
    spec["model"].pop("trusted")
    response = client.post("/v1/audits", json=spec)
    assert response.status_code == 422 and "datasets storage" in response.json()["detail"]

    # A worker handed such specs (rows written past the API) refuses them itself.
    local.worker("attack-worker", queues="gpu,cpu")
    rows = [
        ({"kind": "sklearn", "path": names[0], "trusted": True}, "model.trusted"),
        ({"kind": "sklearn", "path": names[1], "trusted": True}, "model.trusted"),
        ({"kind": "sklearn", "path": names[1]}, "datasets storage"),
        ({"kind": "sklearn", "path": names[2]}, "pickle"),  # not trusted: the loader refuses
    ]
    for model, phrase in rows:
        audit_id = add_audit({**spec, "model": model})
        row = wait_status(audit_id, {"failed", "succeeded"}, timeout=90)
        assert row.status == "failed" and row.attempts == 1, row.error
        assert phrase in row.error, row.error
    assert not marker.exists()


def test_a_million_column_header_is_refused_fast_and_leaves_nothing(
    api: tuple[httpx.Client, Path],
) -> None:
    client, folder = api
    header = ",".join(f"column_{i}" for i in range(1_000_000)).encode()  # 10 MB
    data = header + b"\n" + b"1" * 100 + b"\n"
    assert len(data) > 10_000_000
    start = time.perf_counter()
    response = client.post("/v1/datasets", files={"file": ("wide.csv", data, "text/csv")})
    elapsed = time.perf_counter() - start
    assert response.status_code == 413, response.text
    assert "BIASAUDIT_MAX_CSV_HEADER_BYTES" in response.json()["detail"]
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert not [n for n in _leftovers(folder) if n.endswith(".upload.tmp")]


def _multipart(data: bytes, token: str, host: str) -> bytes:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            f"Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _big_csv(rows: int) -> bytes:
    lines = (b"%d,%s,%d\n" % (i, b"fm"[i % 2 : i % 2 + 1], i % 2) for i in range(rows))
    return b"id,sex,advanced\n" + b"".join(lines)


def _datasets() -> int:
    with session_scope() as session:
        return session.query(repo.Dataset).count()


def _address(client: httpx.Client) -> tuple[str, int]:
    url = client.base_url
    assert url.host and url.port
    return url.host, url.port


def test_a_client_that_leaves_during_the_check_leaves_no_file(
    local: Stack, api: tuple[httpx.Client, Path]
) -> None:
    client, folder = api
    host, port = _address(client)
    request = _multipart(_big_csv(1_500_000), client.headers["authorization"][7:], host)
    before, stored = _leftovers(folder), _datasets()
    with socket.create_connection((host, port)) as sock:
        sock.sendall(request)
        wait_for(
            lambda: any(n.endswith(".upload.tmp") for n in _leftovers(folder)),
            timeout=30,
            what="the upload to be checked",
            step=0.01,
        )
    # gone before the check could have finished: the check stopped with its client
    wait_for(
        lambda: not any(n.endswith(".upload.tmp") for n in _leftovers(folder)),
        timeout=5,
        what="the temporary file to be removed",
    )
    assert _leftovers(folder) == before and _datasets() == stored


def test_sigterm_during_a_check_is_not_held_up(local: Stack) -> None:
    service, base = local.api("stopping-api", extra={"BIASAUDIT_SHUTDOWN_TIMEOUT": "3"})
    folder = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme"
    host, port = base.removeprefix("http://").split(":")
    request = _multipart(_big_csv(1_500_000), _token(), host)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        wait_for(
            lambda: any(n.endswith(".upload.tmp") for n in _leftovers(folder)),
            timeout=30,
            what="the upload to be checked",
            step=0.01,
        )
        start = time.monotonic()
        service.kill(15)
        service.proc.wait(timeout=15)
        assert time.monotonic() - start < 8
    assert not any(n.endswith(".upload.tmp") for n in _leftovers(folder))
    assert "Waiting for background tasks" not in service.log_text()


def test_oversized_and_slow_requests_are_cut_off(api: tuple[httpx.Client, Path]) -> None:
    client, folder = api
    big = client.get("/v1/audits", headers={"X-Big": "a" * 1_000_000})
    assert big.status_code == 431 and big.json()["field"] == "headers"
    many = client.get("/v1/audits", headers={f"x-h{i}": "1" for i in range(10_000)})
    assert many.status_code == 431 and "BIASAUDIT_MAX_REQUEST_HEADERS" in many.json()["detail"]
    host, port = _address(client)
    with socket.create_connection((host, port), timeout=10) as sock:  # slow headers
        start = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5
    token = client.headers["authorization"][7:]
    request = _multipart(b"a,b\n1,2\n" * 10, token, host)
    with socket.create_connection((host, port), timeout=10) as sock:  # a stalled upload
        sock.sendall(request[: len(request) // 2])
        start = time.monotonic()
        assert sock.recv(200) == b""  # closed by the server
        assert time.monotonic() - start < 5
    wait_for(
        lambda: not any(n.endswith(".upload.tmp") for n in _leftovers(folder)),
        timeout=5,
        what="the stalled upload's temporary file to be removed",
    )
    assert client.get("/healthz").status_code == 200  # the server is fine


def test_amplification_and_hygiene_refusals(api: tuple[httpx.Client, Path]) -> None:
    client, _ = api
    csv = _big_csv(200_000)
    stored = client.post("/v1/datasets", files={"file": ("ids.csv", csv, "text/csv")})
    assert stored.status_code == 201, stored.text
    assert stored.json()["column_levels"]["id"] == 1_001
    spec = {
        "name": "ids",
        "dataset": {"id": stored.json()["id"], "prediction": "advanced", "protected": ["id"]},
    }
    start = time.perf_counter()
    response = client.post("/v1/audits", json=spec)
    assert response.status_code == 422 and response.json()["field"] == "dataset.protected[0]"
    assert "'id' has more than 1000 distinct values" in response.json()["detail"]
    many = {**spec, "probes": [{"kind": "demographic"}] * 12_000}
    response = client.post("/v1/audits", json=many)
    assert response.status_code == 422 and response.json()["field"] == "probes"
    deep = b"[" * 30_000 + b"]" * 30_000
    response = client.post("/v1/audits", content=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "nested deeper" in response.json()["detail"]
    response = client.get("/v1/audits", params={"offset": "9223372036854775808"})
    assert response.status_code == 422 and response.json()["field"] == "offset"
    assert time.perf_counter() - start < 5.0
    for response in (client.get("/v1/audits/nope"), client.get("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]
