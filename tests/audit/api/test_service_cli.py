"""``biasaudit keys create`` and ``biasaudit serve`` (a real uvicorn process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from audit.cli import main
from audit.settings import Settings
from audit.storage import db
from audit.storage.repo import list_tokens, verify_token
from tests.audit.api.helpers import auth, make_csv, spec_for

pytestmark = pytest.mark.postgres


def test_keys_create_prints_only_the_token_and_stores_its_hash(
    api_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--role", "reviewer", "--project", "acme"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and token.startswith("ba_")
    with db.session_scope(api_settings.db_url) as session:
        row = verify_token(session=session, token=token)
        assert row is not None and (row.project, row.role) == ("acme", "reviewer")
        [stored] = list_tokens(session=session, project="acme")
        assert token not in (stored.token_hash, stored.prefix)
    assert main(["keys", "create", "--role", "admin", "--project", "bad name!"]) == 2
    assert "project" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_migrates_and_answers_over_http(api_settings: Settings, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ}  # BIASAUDIT_* from the api_settings fixture
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # the key is made while the server starts (both spend seconds importing)
    keys = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "keys", "create", "--role", "submitter"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        assert httpx.get(f"{base}/readyz").status_code == 200
        made, errors = keys.communicate(timeout=120)
        assert keys.returncode == 0, errors
        out = made.strip()
        with httpx.Client(base_url=base, headers=auth(out)) as client:
            ds = client.post("/v1/datasets", files={"file": ("d.csv", make_csv(), "text/csv")})
            assert ds.status_code == 201, ds.text
            spec = spec_for(ds.json()["id"])
            spec["name"] = "served"
            response = client.post("/v1/audits", json=spec)
            assert response.status_code == 202
            assert client.get(f"/v1/audits/{response.json()['id']}").json()["status"] in (
                "queued",
                "running",
                "succeeded",
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert out not in text  # the token is never logged
    assert '"logger": "audit.api.access"' in text  # JSON access lines


def test_serve_refuses_to_start_without_a_broker(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit.settings import get_settings

    monkeypatch.delenv("BIASAUDIT_BROKER_URL")
    get_settings.cache_clear()
    assert main(["serve", "--port", "1"]) == 2
    assert "BIASAUDIT_BROKER_URL" in capsys.readouterr().err


@pytest.mark.slow
def test_server_app_freezes_the_startup_heap_and_plain_apps_do_not(tmp_path: Path) -> None:
    """``biasaudit serve``'s app tunes the GC at startup (process-wide: so in a subprocess)."""
    code = (
        "import gc, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from audit.api.app import GC_THRESHOLDS, create_app, create_server_app\n"
        "make = create_server_app if sys.argv[1] == 'server' else create_app\n"
        "before = gc.get_threshold()\n"
        "with TestClient(make()) as c:\n"
        "    assert c.get('/healthz').status_code == 200\n"
        "    print(gc.get_freeze_count() > 0, gc.get_threshold() == GC_THRESHOLDS,"
        " gc.get_threshold() == before)\n"
    )
    env = {**os.environ, "BIASAUDIT_HOME": str(tmp_path)}
    env.pop("BIASAUDIT_DATABASE_URL", None)
    procs = {  # the two side by side
        kind: subprocess.Popen(
            [sys.executable, "-c", code, kind],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for kind in ("server", "plain")
    }
    out = {kind: proc.communicate(timeout=120) for kind, proc in procs.items()}
    assert out["server"][0].split() == ["True", "True", "False"], out["server"][1]
    assert out["plain"][0].split() == ["False", "False", "True"], out["plain"][1]
