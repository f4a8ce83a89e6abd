"""The HTTP client behind ``biasaudit submit``: retries, error messages, uploads, packing.

The HTTP exchanges are scripted with ``httpx.MockTransport`` (a unit test of the
client's own logic); the real service is exercised in
``tests/integration/test_submit_cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.api.model_upload import inspect_model
from audit.cli.api_client import ApiClient, ApiRequestError
from audit.cli.submit import _pack_folder, upload_inputs
from audit.settings import Settings
from probes.models.fingerprint import fingerprint


def _client(handler, sleeps: list[float]) -> ApiClient:  # type: ignore[no-untyped-def]
    return ApiClient(
        "http://api.test", "ba_token", sleep=sleeps.append, transport=httpx.MockTransport(handler)
    )


def test_503_is_retried_after_the_servers_retry_after() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, headers={"Retry-After": "2"}, json={"detail": "busy"})
        return httpx.Response(202, json={"id": "a1", "status": "queued"})

    sleeps: list[float] = []
    with _client(handler, sleeps) as client:
        response = client.request("POST", "/v1/audits", build=lambda: {"json": {"name": "x"}})
    assert response.json()["id"] == "a1"
    assert sleeps == [2.0, 2.0]
    assert [c.headers["Authorization"] for c in calls] == ["Bearer ba_token"] * 3
    assert all(json.loads(c.content) == {"name": "x"} for c in calls)  # the body is re-sent


def test_4xx_raises_with_the_servers_json_error_and_every_field() -> None:
    body = {
        "detail": "invalid audit spec: name: required; domain: bad",
        "field": "name",
        "errors": [{"field": "name", "message": "required"}, {"field": "domain", "message": "bad"}],
    }
    sleeps: list[float] = []
    with _client(lambda r: httpx.Response(422, json=body), sleeps) as client:
        with pytest.raises(ApiRequestError) as info:
            client.request("POST", "/v1/audits")
    message = str(info.value)
    assert message.startswith("POST /v1/audits: 422 invalid audit spec")
    assert "  name: required" in message and "  domain: bad" in message
    assert info.value.status == 422 and sleeps == []  # a 4xx is never retried


def test_an_unreachable_api_is_retried_then_named() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sleeps: list[float] = []
    with _client(handler, sleeps) as client:
        with pytest.raises(ApiRequestError, match="cannot reach the API at http://api.test"):
            client.get_json("/v1/audits/x")
    assert len(sleeps) == 5


def test_upload_inputs_replaces_paths_with_the_uploads_ids(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("sex,advanced\nF,1\n")
    (tmp_path / "m.skops").write_bytes(b"PK")
    seen: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/datasets/uploads":  # no object store: multipart instead
            return httpx.Response(409, json={"detail": "uploads: ...", "field": "uploads"})
        seen.append((request.url.path, request.read()))
        return httpx.Response(201, json={"id": f"id-{len(seen)}"})

    raw: dict[str, Any] = {
        "name": "x",
        "dataset": {"path": "data.csv", "protected": ["sex"]},
        "model": {"kind": "sklearn", "path": "m.skops"},
    }
    with _client(handler, []) as client:
        spec = upload_inputs(client, raw, tmp_path)
    assert spec["dataset"] == {"id": "id-1", "protected": ["sex"]}
    assert spec["model"] == {"kind": "sklearn", "id": "id-2"}
    assert raw["dataset"]["path"] == "data.csv"  # the caller's dict is not changed
    assert [path for path, _ in seen] == ["/v1/datasets", "/v1/models"]
    assert b"sex,advanced\nF,1\n" in seen[0][1] and b'filename="data.csv"' in seen[0][1]


def test_upload_inputs_uploads_a_probes_train_file_and_names_it_by_id(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("sex,advanced\nF,1\n")
    (tmp_path / "train.csv").write_text("sex,advanced\nM,0\n")
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/datasets/uploads":
            return httpx.Response(409, json={"detail": "uploads: ...", "field": "uploads"})
        assert request.url.path == "/v1/datasets"
        seen.append(request.read())
        return httpx.Response(201, json={"id": f"id-{len(seen)}"})

    lda = {"kind": "lda-search", "attribute": "sex", "train": "train.csv"}
    raw: dict[str, Any] = {
        "name": "x",
        "dataset": {"path": "data.csv", "protected": ["sex"]},
        "probes": [{"kind": "demographic"}, lda],
    }
    with _client(handler, []) as client:
        spec = upload_inputs(client, raw, tmp_path)
    assert spec["probes"] == [
        {"kind": "demographic"},
        {"kind": "lda-search", "attribute": "sex", "train_id": "id-2"},
    ]
    assert b'filename="train.csv"' in seen[1] and b"M,0" in seen[1]
    assert raw["probes"][1]["train"] == "train.csv"  # the caller's dict is not changed
    (tmp_path / "train.csv").unlink()
    with _client(handler, []) as client:
        with pytest.raises(ApiRequestError, match=r"probes\[1\]\.train: file not found"):
            upload_inputs(client, raw, tmp_path)


def test_upload_inputs_names_a_missing_file(tmp_path: Path) -> None:
    raw = {"name": "x", "dataset": {"path": "gone.csv", "protected": ["sex"]}}
    with _client(lambda r: httpx.Response(500), []) as client:
        with pytest.raises(ApiRequestError, match="dataset.path: file not found: .*gone.csv"):
            upload_inputs(client, raw, tmp_path)


def test_a_packed_model_folder_passes_the_servers_checks_with_the_same_fingerprint(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "screener"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref")
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    (folder / "README.md").write_text("# card")
    archive = _pack_folder(folder, tmp_path)
    settings = Settings(artifact_dir=tmp_path / "home")
    kind, root, files = inspect_model(archive, tmp_path / "unpacked", settings)
    assert (kind, files) == ("huggingface", 3)  # .git left out, the card kept
    assert fingerprint(root) == fingerprint(folder)


def test_follow_prints_each_change_until_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    from audit.cli.submit import follow

    states = iter([("queued", 0.0), ("running", 0.25), ("running", 0.25), ("succeeded", 1.0)])

    def handler(request: httpx.Request) -> httpx.Response:
        status, progress = next(states)
        return httpx.Response(200, json={"id": "a1", "status": status, "progress": progress})

    with _client(handler, []) as client:
        assert follow(client, "a1", timeout=60.0)["status"] == "succeeded"
    err = capsys.readouterr().err.splitlines()
    # an unchanged state is not printed again
    assert err == ["audit a1: queued 0%", "audit a1: running 25%", "audit a1: succeeded 100%"]


def test_follow_gives_up_at_the_timeout_without_cancelling() -> None:
    from audit.cli.submit import follow

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"id": "a1", "status": "running", "progress": 0.5})

    with _client(handler, []) as client:
        with pytest.raises(TimeoutError, match="audit a1 is still running after 0 s"):
            follow(client, "a1", timeout=0.001)
    assert set(seen) == {"GET /v1/audits/a1"}  # no cancel request


def test_a_failed_audit_exits_2_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from audit.cli import submit

    (tmp_path / "data.csv").write_text("sex,advanced\nF,1\nM,0\n")
    (tmp_path / "spec.yaml").write_text(
        "name: x\ndataset: {path: data.csv, prediction: advanced, protected: [sex]}\n"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/datasets/uploads":  # an older server: no such route
            return httpx.Response(404, json={"detail": "Not Found", "field": None})
        if request.method == "POST":
            return httpx.Response(201 if "datasets" in request.url.path else 202, json={"id": "a1"})
        error = "dataset.protected: column 'sex' has only one group"
        body = {"id": "a1", "status": "failed", "progress": 0.1, "error": error}
        return httpx.Response(200, json=body)

    client = _client(handler, [])
    monkeypatch.setattr(submit, "ApiClient", lambda *a, **k: client)
    monkeypatch.setenv("BIASAUDIT_TOKEN", "ba_token")
    args = argparse.Namespace(
        spec=str(tmp_path / "spec.yaml"), api="http://api.test", out=None, wait=True, timeout=5.0
    )
    assert submit.cmd_submit(args) == 2
    err = capsys.readouterr().err
    assert "audit a1 failed: dataset.protected: column 'sex' has only one group" in err


def test_on_a_terminal_progress_is_one_redrawn_bar(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from audit.cli.submit import follow

    states = iter([("running", 0.5), ("succeeded", 1.0)])

    def handler(request: httpx.Request) -> httpx.Response:
        status, progress = next(states)
        return httpx.Response(200, json={"id": "a1", "status": status, "progress": progress})

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with _client(handler, []) as client:
        follow(client, "a1", timeout=60.0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("audit a1: succeeded 100%\n")
    assert "\r\x1b[2K[" + "#" * 15 + "." * 15 + "] audit a1: running 50%" in err
