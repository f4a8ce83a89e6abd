"""``biasaudit datasets|models list|delete``: what it sends, prints and exits with.

The API is scripted with ``httpx.MockTransport`` (the client's own logic); the routes
themselves are tested in ``tests/audit/api/test_erasure_api.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from audit.cli import stored
from audit.cli.api_client import ApiClient
from audit.cli.main import main

ITEM = {
    "id": "5f0c0000-0000-4000-8000-000000000001",
    "sha256": "9b1e" + "0" * 60,
    "rows": 3000,
    "columns": ["sex"],
    "size_bytes": 81234,
    "filename": "pool.csv",
    "created_at": "2026-11-02T09:00:00Z",
    "usage": {"audits": 4, "last_used_at": "2026-11-20T10:00:00Z"},
    "deleted_at": None,
    "deleted_by": None,
}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests the command sends; the API answers from ``ANSWERS``."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.method == "GET":
            return httpx.Response(200, json={"data": [ITEM], "count": 7, "limit": 1, "offset": 0})
        return httpx.Response(
            409,
            json={
                "detail": "dataset x is in use: queued or running audit(s) a1",
                "field": None,
                "audits": ["a1"],
                "schedules": [],
            },
        )

    def client(url: str, token: str) -> ApiClient:
        assert token == "ba_token"
        return ApiClient(url, token, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(stored, "ApiClient", client)
    monkeypatch.setenv("BIASAUDIT_TOKEN", "ba_token")
    return calls


def test_list_prints_one_line_per_item(sent: list[Any], capsys: pytest.CaptureFixture) -> None:
    code = main(["datasets", "list", "--api", "http://api.test", "--limit", "1", "--deleted"])
    assert code == 0
    out, err = capsys.readouterr()
    assert out.startswith(ITEM["id"]) and "3000 rows" in out and "4 audits" in out
    assert "1 of 7 datasets" in err
    assert str(sent[0].url) == "http://api.test/v1/datasets?limit=1&offset=0&deleted=true"


def test_refused_delete_exits_2_with_the_servers_message(
    sent: list[Any], capsys: pytest.CaptureFixture
) -> None:
    code = main(["models", "delete", "../audits/x", "--api", "http://api.test"])
    assert code == 2
    assert "409 dataset x is in use: queued or running audit(s) a1" in capsys.readouterr().err
    assert sent[0].method == "DELETE"
    assert sent[0].url.raw_path == b"/v1/models/..%2Faudits%2Fx"  # the id stays one segment
