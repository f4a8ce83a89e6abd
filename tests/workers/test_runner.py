"""One delivery of biasaudit.run_audit, in-process, on PostgreSQL: claim, compute, store."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.engine.run import compute_results
from audit.storage import repo, session_scope
from audit.storage.models import utcnow
from tests.factories import spec_for, write_pool
from tests.workers.conftest import add_audit, add_dataset, audit_row, result_count
from workers import runner, shards

pytestmark = pytest.mark.postgres


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for key in ("id", "started_at", "finished_at"):
        doc["audit"].pop(key)
    return doc


def _stored(audit_id: str) -> dict[str, Any]:
    with session_scope() as session:
        row = repo.load_audit(session=session, audit_id=audit_id)
        assert row is not None
        doc = repo.get_results(session=session, project=row.project, audit_id=audit_id)
    assert doc is not None
    return doc


def test_run_stores_the_engine_results(service_env: dict[str, Any]) -> None:
    dataset_id = add_dataset(service_env["data"])
    spec = spec_for(dataset_id)
    audit_id = add_audit(spec)
    assert runner.execute_audit(audit_id, worker="w1") == "succeeded"
    row = audit_row(audit_id)
    assert (row.status, row.attempts, row.progress, row.error) == ("succeeded", 1, 1.0, None)
    stored = _stored(audit_id)
    assert stored["audit"]["id"] == audit_id
    # the same document the engine gives for the stored file
    sha256 = stored["dataset"]["sha256"]
    expected = compute_results(
        {**spec, "dataset": {**spec["dataset"], "path": f"{dataset_id}.csv", "sha256": sha256}},
        base_dir=service_env["data"] / "acme",
    )
    assert _strip(stored) == _strip(expected)
    assert stored["manifest"]["spec"]["dataset"]["id"] == dataset_id


def test_second_delivery_is_acknowledged_without_a_second_result(
    service_env: dict[str, Any],
) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    assert runner.execute_audit(audit_id, worker="w1") == "succeeded"
    assert runner.execute_audit(audit_id, worker="w2") == "skipped"
    assert result_count(audit_id) == 1
    assert audit_row(audit_id).attempts == 1


def test_concurrent_deliveries_run_once(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def deliver(name: str) -> None:
        barrier.wait()
        outcomes.append(runner.execute_audit(audit_id, worker=name))

    threads = [threading.Thread(target=deliver, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["skipped", "skipped", "skipped", "succeeded"]
    assert result_count(audit_id) == 1 and audit_row(audit_id).attempts == 1


def test_input_error_fails_at_once_naming_the_column(service_env: dict[str, Any]) -> None:
    spec = spec_for(add_dataset(service_env["data"]))
    spec["dataset"]["prediction"] = "hired"
    audit_id = add_audit(spec)
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    row = audit_row(audit_id)
    assert row.status == "failed" and row.attempts == 1
    assert "dataset.prediction" in row.error and "'hired'" in row.error
    assert runner.execute_audit(audit_id, worker="w2") == "skipped"  # no retry
    assert result_count(audit_id) == 0


def test_unknown_dataset_id_fails(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for("00000000-0000-4000-8000-000000000000"))
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    assert "dataset.id" in audit_row(audit_id).error


def test_other_projects_dataset_is_not_found(service_env: dict[str, Any]) -> None:
    dataset_id = add_dataset(service_env["data"], project="other")
    audit_id = add_audit(spec_for(dataset_id), project="acme")
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    assert "dataset.id" in audit_row(audit_id).error


def test_path_outside_the_data_root_is_refused(service_env: dict[str, Any], tmp_path: Path) -> None:
    outside = write_pool(tmp_path / "elsewhere" / "pool.csv")
    spec = spec_for("x")
    spec["dataset"].pop("id")
    spec["dataset"]["path"] = str(outside)
    audit_id = add_audit(spec)
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    assert "outside the project's data folder" in audit_row(audit_id).error


def test_cancel_request_stops_a_running_audit(
    service_env: dict[str, Any], fault_hooks: None
) -> None:
    spec = spec_for(add_dataset(service_env["data"]), description="biasaudit-test:sleep=20")
    audit_id = add_audit(spec)
    outcome: list[str] = []
    thread = threading.Thread(
        target=lambda: outcome.append(runner.execute_audit(audit_id, worker="w1"))
    )
    thread.start()
    for _ in range(100):
        if audit_row(audit_id).status == "running":
            break
        threading.Event().wait(0.05)
    with session_scope() as session:
        repo.request_cancel(session=session, project="acme", audit_id=audit_id)
    thread.join(timeout=15)
    assert outcome == ["cancelled"]
    assert audit_row(audit_id).status == "cancelled" and result_count(audit_id) == 0


def test_heartbeat_keeps_the_lease_alive(service_env: dict[str, Any], fault_hooks: None) -> None:
    # A 3 s run with a 2 s lease: the lease keeper renews it, nobody can re-claim.
    spec = spec_for(add_dataset(service_env["data"]), description="biasaudit-test:sleep=3")
    audit_id = add_audit(spec)
    thread = threading.Thread(target=runner.execute_audit, args=(audit_id,), kwargs={"worker": "a"})
    thread.start()
    threading.Event().wait(2.5)
    with session_scope() as session:
        assert (
            repo.claim_audit(session=session, audit_id=audit_id, worker="b", lease_seconds=2)
            is None
        )
    thread.join(timeout=20)
    row = audit_row(audit_id)
    assert row.status == "succeeded" and row.attempts == 1 and row.worker == "a"


def test_exhausted_attempts_fail_with_worker_lost(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    past = utcnow() - timedelta(minutes=5)
    for i in range(3):  # three claims whose workers died (leases long expired)
        with session_scope() as session:
            assert repo.claim_audit(
                session=session,
                audit_id=audit_id,
                worker=f"dead{i}",
                lease_seconds=1,
                now=past + timedelta(seconds=10 * i),
            )
    assert runner.execute_audit(audit_id, worker="w") == "skipped"
    row = audit_row(audit_id)
    assert row.status == "failed" and "worker lost" in row.error and "3" in row.error


def test_lost_claim_stops_the_run(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    with session_scope() as session:
        repo.claim_audit(session=session, audit_id=audit_id, worker="a", lease_seconds=60)
    hb = runner.Heartbeat(audit_id, worker="not-the-holder", lease_seconds=60)
    with pytest.raises(runner.LeaseLost):
        hb.progress(0.5)
    assert audit_row(audit_id).progress == 0.0  # the holder's row was not touched


def test_sharded_run_equals_unsharded(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.settings import get_settings

    data = service_env["data"]
    plain = add_audit(spec_for(add_dataset(data, n=3000)))
    assert runner.execute_audit(plain, worker="w") == "succeeded"

    monkeypatch.setenv("BIASAUDIT_SHARD_THRESHOLD_ROWS", "1000")
    monkeypatch.setenv("BIASAUDIT_SHARD_ROWS", "700")
    get_settings.cache_clear()
    sharded = add_audit(audit_row(plain).spec)
    launched: list[Any] = []

    def launch(audit_id: str, plan: list[Any]) -> None:  # the chord, in-process
        launched.extend(plan)
        assert audit_row(audit_id).status == "running"
        parts = [
            shards.execute_shard(audit_id, s.index, s.start, s.stop, len(plan), s.unit)
            for s in plan
        ]
        assert shards.merge_shards(audit_id, json.loads(json.dumps(parts[::-1]))) == "succeeded"

    assert runner.execute_audit(sharded, worker="w", launch_shards=launch) == "sharded"
    assert len(launched) == 5 and {s.unit for s in launched} == {"bytes"}
    assert audit_row(sharded).status == "succeeded" and result_count(sharded) == 1
    merged = _strip(_stored(sharded))
    assert merged["dataset"].pop("shards") == 5
    assert merged == _strip(_stored(plain))
    # a late duplicate merge (an old chord) writes nothing
    assert shards.merge_shards(sharded, []) in ("skipped", "duplicate")
    assert result_count(sharded) == 1


def test_unexpected_error_frees_the_lease_then_fails_on_the_last_attempt(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.engine.run

    def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(audit.engine.run, "compute_results", broken)
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    for attempt in (1, 2):
        with pytest.raises(RuntimeError, match="disk on fire"):  # Celery logs it and acks
            runner.execute_audit(audit_id, worker=f"w{attempt}")
        row = audit_row(audit_id)
        assert row.status == "running" and row.attempts == attempt
        assert row.lease_until <= utcnow()  # claimable again at once: the reconciler re-publishes
    with pytest.raises(RuntimeError):
        runner.execute_audit(audit_id, worker="w3")
    row = audit_row(audit_id)
    assert row.status == "failed" and row.attempts == 3
    assert row.error == "internal error in attempt 3: RuntimeError: disk on fire"


def test_soft_time_limit_fails_without_retry(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    import audit.engine.run

    def slow(*_: Any, **__: Any) -> dict[str, Any]:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(audit.engine.run, "compute_results", slow)
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    with pytest.raises(SoftTimeLimitExceeded):
        runner.execute_audit(audit_id, worker="w")
    row = audit_row(audit_id)
    assert row.status == "failed" and row.attempts == 1
    assert "time limit" in row.error and "BIASAUDIT_TASK_SOFT_TIME_LIMIT" in row.error


def test_model_path_outside_the_project_folder_is_refused(
    service_env: dict[str, Any], tmp_path: Path
) -> None:
    spec = spec_for(add_dataset(service_env["data"]))
    spec["model"] = {"kind": "sklearn", "path": str(tmp_path / "elsewhere.skops")}
    audit_id = add_audit(spec)
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    error = audit_row(audit_id).error
    assert error.startswith("model.path:") and "outside the project's data folder" in error


def test_missing_model_file_fails_without_retry(service_env: dict[str, Any]) -> None:
    spec = spec_for(add_dataset(service_env["data"]))
    spec["model"] = {"kind": "sklearn", "path": str(service_env["data"] / "acme" / "gone.skops")}
    audit_id = add_audit(spec)
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    row = audit_row(audit_id)
    assert row.attempts == 1 and "model.path: file not found" in row.error
