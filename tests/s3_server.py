"""A standalone S3-compatible server for tests: moto's server mode as a child process.

Nothing is patched in-process: the code under test talks HTTP to
``python -m moto.server`` on a free loopback port, as it would to MinIO or AWS.
Use the fixtures by importing them into a test module or conftest::

    from tests.s3_server import s3_endpoint, s3_env  # noqa: F401 (fixtures)

``s3_env`` is a fresh bucket's ``BIASAUDIT_STORAGE_*`` variables (a prefix
included, so keys are checked to stay under it).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-not-a-real-one"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server started for this test session."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BIASAUDIT_"))}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"moto server exited:\n{Path(log).read_text()[-2000:]}", pytrace=False)
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                pytest.fail("moto server did not answer within 60 s", pytrace=False)
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    """A boto3 client of the test server (the tests' own view of the bucket)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def new_bucket(endpoint: str) -> str:
    name = f"biasaudit-{secrets.token_hex(6)}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def storage_env(endpoint: str, bucket: str, prefix: str = "tenants") -> dict[str, str]:
    """The ``BIASAUDIT_STORAGE_*`` variables pointing the service at ``bucket``."""
    return {
        "BIASAUDIT_STORAGE_URL": f"s3://{bucket}/{prefix}",
        "BIASAUDIT_STORAGE_ENDPOINT_URL": endpoint,
        "BIASAUDIT_STORAGE_REGION": REGION,
        "BIASAUDIT_STORAGE_ACCESS_KEY_ID": ACCESS_KEY,
        "BIASAUDIT_STORAGE_SECRET_ACCESS_KEY": SECRET_KEY,
    }


@pytest.fixture
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """A fresh bucket's ``BIASAUDIT_STORAGE_*`` variables."""
    return storage_env(s3_endpoint, new_bucket(s3_endpoint))


def object_names(endpoint: str, bucket: str) -> list[str]:
    """Every object name in ``bucket``, sorted."""
    reply = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in reply.get("Contents", []))
