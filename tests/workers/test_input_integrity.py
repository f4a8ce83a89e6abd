"""The bytes audited are the bytes uploaded: a stored file changed after its upload
(local data folder) fails the audit as an input error naming ``dataset.id`` /
``model.id`` and both digests, whether the audit runs in one process, in chunks or in
shards; unchanged, the three record the same ``dataset.sha256``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from audit.settings import get_settings
from audit.storage import repo, session_scope
from tests.factories import spec_for
from tests.workers.conftest import add_audit, add_dataset, audit_row, result_count
from workers import runner, shards
from workers.inputs import resolve_dataset

pytestmark = pytest.mark.postgres


def _stored_file(data: Path, dataset_id: str) -> Path:
    return data / "acme" / f"{dataset_id}.csv"


def _tamper(path: Path) -> str:
    """Change one byte of the stored file (same size); its new sha256."""
    body = bytearray(path.read_bytes())
    last = body.rstrip(b"\n")[-1:]
    at = len(body.rstrip(b"\n")) - 1
    body[at] = ord("0") if last == b"1" else ord("1")
    path.write_bytes(bytes(body))
    return hashlib.sha256(bytes(body)).hexdigest()


def _launcher(outcomes: list[str]) -> Any:
    def launch(audit_id: str, plan: list[Any]) -> None:  # the chord, in-process
        parts = [
            shards.execute_shard(audit_id, s.index, s.start, s.stop, len(plan), s.unit)
            for s in plan
        ]
        outcomes.append(shards.merge_shards(audit_id, json.loads(json.dumps(parts))))

    return launch


def _digest_of(audit_id: str) -> str:
    with session_scope() as session:
        row = repo.load_audit(session=session, audit_id=audit_id)
        assert row is not None and row.status == "succeeded", row and row.error
        doc = repo.get_results(session=session, project="acme", audit_id=audit_id)
    assert doc is not None
    return str(doc["dataset"]["sha256"])


def _shard_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIASAUDIT_SHARD_THRESHOLD_ROWS", "1000")
    monkeypatch.setenv("BIASAUDIT_SHARD_ROWS", "700")
    get_settings.cache_clear()


def test_worker_passes_the_uploads_digest_as_expected(service_env: dict[str, Any]) -> None:
    dataset_id = add_dataset(service_env["data"])
    spec = spec_for(dataset_id)
    resolved, _, _ = resolve_dataset(spec, project="acme")
    with session_scope() as session:
        row = repo.get_dataset(session=session, project="acme", dataset_id=dataset_id)
        assert row is not None
        assert resolved["dataset"]["sha256"] == row.sha256
    assert "sha256" not in spec["dataset"]  # the stored spec is not changed


@pytest.mark.parametrize("how", ["in-process", "chunked", "sharded"])
def test_a_stored_file_changed_after_upload_fails_the_audit(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    data = service_env["data"]
    dataset_id = add_dataset(data, n=3000)
    with session_scope() as session:
        row = repo.get_dataset(session=session, project="acme", dataset_id=dataset_id)
        assert row is not None
        recorded = row.sha256
    actual = _tamper(_stored_file(data, dataset_id))
    assert actual != recorded
    if how == "chunked":
        monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
        get_settings.cache_clear()
    launched: list[str] = []
    if how == "sharded":
        _shard_settings(monkeypatch)
    audit_id = add_audit(spec_for(dataset_id))
    launch = _launcher(launched) if how == "sharded" else None
    assert runner.execute_audit(audit_id, worker="w1", launch_shards=launch) == "failed"
    assert launched == []  # refused before any shard was planned
    row = audit_row(audit_id)
    assert row.status == "failed" and row.attempts == 1
    assert row.error.startswith("dataset.id:"), row.error
    assert recorded in row.error and actual in row.error and dataset_id in row.error
    assert result_count(audit_id) == 0
    assert runner.execute_audit(audit_id, worker="w2") == "skipped"  # never retried


@pytest.mark.slow
def test_in_process_chunked_and_sharded_record_the_same_digest(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = service_env["data"]
    dataset_id = add_dataset(data, n=3000)
    expected = hashlib.sha256(_stored_file(data, dataset_id).read_bytes()).hexdigest()
    plain = add_audit(spec_for(dataset_id))
    assert runner.execute_audit(plain, worker="w") == "succeeded"
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
    get_settings.cache_clear()
    chunked = add_audit(spec_for(dataset_id))
    assert runner.execute_audit(chunked, worker="w") == "succeeded"
    _shard_settings(monkeypatch)
    merged: list[str] = []
    sharded = add_audit(spec_for(dataset_id))
    launch = _launcher(merged)
    assert runner.execute_audit(sharded, worker="w", launch_shards=launch) == "sharded"
    assert merged == ["succeeded"]
    assert _digest_of(plain) == _digest_of(chunked) == _digest_of(sharded) == expected


def _skops_model(path: Path, flip: bool) -> str:
    import numpy as np
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x = pd.DataFrame({"qualified": np.tile([0, 1], 50)})
    y = (x.qualified == (0 if flip else 1)).to_numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(LogisticRegression().fit(x, y), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_stored_model_changed_after_upload_fails_naming_model_id(
    service_env: dict[str, Any],
) -> None:
    data = service_env["data"]
    dataset_id = add_dataset(data)
    models = data / "acme" / "models"
    with session_scope() as session:
        row = repo.create_model(
            session=session, project="acme", kind="sklearn", sha256="", path="x"
        )
        path = models / f"{row.id}.skops"
        row.sha256, row.path, model_id = _skops_model(path, flip=False), str(path), row.id
    recorded = row.sha256
    spec = spec_for(dataset_id)
    spec["model"] = {"kind": "sklearn", "id": model_id, "features": ["qualified"]}
    fine = add_audit(spec)
    assert runner.execute_audit(fine, worker="w1") == "succeeded", audit_row(fine).error
    with session_scope() as session:
        doc = repo.get_results(session=session, project="acme", audit_id=fine)
    assert doc is not None and doc["model"]["sha256"] == recorded
    actual = _skops_model(path, flip=True)  # replaced in the folder after the upload
    audit_id = add_audit(spec)
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    row = audit_row(audit_id)
    assert row.attempts == 1 and row.error.startswith("model.id:"), row.error
    assert model_id in row.error and recorded in row.error and actual in row.error
    assert result_count(audit_id) == 0
