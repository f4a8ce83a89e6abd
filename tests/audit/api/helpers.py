"""Helpers for the API tests: headers, a small CSV, upload, a spec, queued messages."""

from __future__ import annotations

import json
from typing import Any

import redis
from fastapi.testclient import TestClient

from audit.queue import TASK_CONVERT_DATASET
from tests.factories import spec_for

__all__ = ["auth", "claim", "finish_audit", "make_csv", "queued_messages", "spec_for", "upload"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_csv(rows: int = 400) -> bytes:
    """A small hiring table: sex, race, qualified (label), advanced (prediction)."""
    lines = ["sex,race,qualified,advanced"]
    for i in range(rows):
        sex = "female" if i % 2 else "male"
        race = ("Black", "White", "Asian")[i % 3]
        selected = i % 4 < 2 if sex == "male" else i % 8 < 2  # female rate half the male
        lines.append(f"{sex},{race},{(i // 3) % 2},{int(selected)}")
    return ("\n".join(lines) + "\n").encode()


def upload(
    client: TestClient,
    token: str,
    content: bytes,
    *,
    name: str = "data.csv",
    ctype: str = "text/csv",
) -> Any:
    return client.post("/v1/datasets", files={"file": (name, content, ctype)}, headers=auth(token))


def queued_messages(
    conn: redis.Redis, queue: str, *, conversions: bool = False
) -> list[dict[str, Any]]:
    """The Celery messages waiting in ``queue`` (kombu keeps them in a Redis list);
    without ``conversions``, less the ``biasaudit.convert_dataset`` messages that every
    CSV upload sends (its columnar copy)."""
    messages = [json.loads(raw) for raw in conn.lrange(queue, 0, -1)]
    if conversions:
        return messages
    return [m for m in messages if m["headers"]["task"] != TASK_CONVERT_DATASET]


def finish_audit(database_url: str, audit_id: str) -> dict[str, Any]:
    """Run a queued audit the way a worker does (claim, real engine, store); return results.

    The API tests have no worker process; this uses the same storage calls and
    the real ``compute_results``, with the dataset id resolved to its file.
    """
    from pathlib import Path

    from audit.engine.run import compute_results
    from audit.storage.db import session_scope
    from audit.storage.repo import claim_audit, get_dataset, store_results

    with session_scope(database_url) as session:
        audit = claim_audit(session=session, audit_id=audit_id, worker="test", lease_seconds=60)
        assert audit is not None, f"audit {audit_id} could not be claimed"
        spec = json.loads(json.dumps(audit.spec))
        dataset = get_dataset(
            session=session, project=audit.project, dataset_id=spec["dataset"]["id"]
        )
        assert dataset is not None
        spec["dataset"].pop("id")
        spec["dataset"]["path"] = dataset.path
    results = compute_results(spec, audit_id=audit_id, base_dir=Path(dataset.path).parent)
    with session_scope(database_url) as session:
        assert store_results(session=session, audit_id=audit_id, results=results)
    return results


def claim(database_url: str, audit_id: str) -> None:
    """Mark a queued audit running, as a worker's claim does."""
    from audit.storage.db import session_scope
    from audit.storage.repo import claim_audit

    with session_scope(database_url) as session:
        assert claim_audit(session=session, audit_id=audit_id, worker="test", lease_seconds=60)
