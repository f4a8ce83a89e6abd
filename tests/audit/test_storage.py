"""Storage layer on SQLite and PostgreSQL: migrations, tenancy, idempotency, races, tokens."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from audit.storage import db, repo
from audit.storage.db import session_scope
from audit.storage.models import ApiToken, Audit, Base, FindingRow, Result

SPEC = {"name": "hiring-test", "domain": "hiring", "dataset": {"path": "x.csv"}}
SHA = "a" * 64


def _audit(session: Any, project: str = "acme", **kw: Any) -> Audit:
    args: dict[str, Any] = {
        "project": project,
        "spec": SPEC,
        "name": "hiring-test",
        "domain": "hiring",
        "spec_sha256": SHA,
    }
    args.update(kw)
    return repo.create_audit(session=session, **args)


def _results(verdict: str = "fail") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "verdict": verdict,
        "model": {"kind": "predictions", "sha256": "m" * 64},
        "dataset": {"sha256": "d" * 64, "rows": 100},
        "findings": [
            {"probe": "demographic", "attribute": "race", "group": "b", "metric": "impact_ratio",
             "value": 0.5, "threshold": 0.8, "status": "fail", "p_value": 0.01, "ci": [0.4, 0.6]},
            {"probe": "demographic", "attribute": "race", "group": "w", "metric": "impact_ratio",
             "value": 1.0, "threshold": 0.8, "status": "pass", "p_value": None},
        ],
    }  # fmt: skip


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in n threads released together; return results (exceptions re-raised)."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            out[i] = work(i)
        except BaseException as exc:  # collected, re-raised in the test thread
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for value in out:
        if isinstance(value, BaseException):
            raise value
    return out


# ---------------------------------------------------------------- migrations and engine


def _head(database_url: str) -> str | None:
    """The newest migration (migrations of several branches are chained at merge time)."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(
        db._alembic_config(database_url)
    ).get_current_head()
    return head


def test_migrations_are_idempotent_and_match_the_models(database_url: str) -> None:
    db.upgrade(database_url)
    db.upgrade(database_url)
    assert db.current_revision(database_url) == _head(database_url)
    with db.make_engine(database_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_from_empty_concurrently_then_downgrade(database_url: str) -> None:
    cfg = db._alembic_config(database_url)
    with db.make_engine(database_url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(db.make_engine(database_url)).get_table_names()) <= {"alembic_version"}
    _race(3, lambda _: db.upgrade(database_url))  # processes starting together
    tables = set(inspect(db.make_engine(database_url)).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert db.current_revision(database_url) == _head(database_url)


def test_default_database_is_sqlite_under_artifact_dir(
    clean_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_settings.setenv("BIASAUDIT_ARTIFACT_DIR", str(tmp_path / "artifacts"))
    db.upgrade()  # what `biasaudit db upgrade` does with no configuration
    assert (tmp_path / "artifacts" / "biasaudit.db").is_file()
    with session_scope() as session:
        audit_id = _audit(session).id
    with session_scope(f"sqlite:///{tmp_path / 'artifacts' / 'biasaudit.db'}") as session:
        assert repo.load_audit(session=session, audit_id=audit_id) is not None
    db.dispose_engines()


def test_url_normalisation() -> None:
    assert db.normalize_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    with pytest.raises(ValueError, match="BIASAUDIT_DATABASE_URL: unsupported database 'mysql'"):
        db.normalize_url("mysql://u@h/d")
    with pytest.raises(ValueError, match="psycopg2"):
        db.normalize_url("postgresql+psycopg2://u@h/d")


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sub/dir/x.db"  # parent folders are created
    engine = db.make_engine(url)
    assert db.make_engine(url) is engine  # cached per URL
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    db.dispose_engines()


def test_ping(database_url: str) -> None:
    assert db.ping(database_url) is True
    assert db.ping(database_url.replace("+psycopg", "")) is True  # plain postgresql:// works
    assert db.ping("postgresql://nobody@127.0.0.1:1/nothing") is False
    assert db.ping("mysql://x@y/z") is False


def test_session_scope_rolls_back_on_error(database_url: str) -> None:
    with pytest.raises(RuntimeError), session_scope(database_url) as session:
        _audit(session)
        raise RuntimeError("boom")
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Audit)) == 0


def test_foreign_keys_are_enforced(database_url: str) -> None:
    with pytest.raises(Exception, match="(?i)foreign key"), session_scope(database_url) as s:
        s.add(Result(audit_id="no-such-audit", document={}))
        s.flush()


# ---------------------------------------------------------------- audits


def test_create_get_and_timestamps_are_utc(database_url: str) -> None:
    with session_scope(database_url) as session:
        audit = _audit(session, dataset_sha256="d" * 64)
        audit_id = audit.id
    with session_scope(database_url) as session:
        got = repo.get_audit(session=session, project="acme", audit_id=audit_id)
        assert got is not None
        assert (got.status, got.progress, got.attempts, got.cancel_requested) == (
            "queued", 0.0, 0, False
        )  # fmt: skip
        assert got.spec == SPEC and got.dataset_sha256 == "d" * 64
        assert got.created_at.tzinfo is UTC
        assert abs(datetime.now(UTC) - got.created_at) < timedelta(minutes=1)
        assert repo.get_audit(session=session, project="acme", audit_id="missing") is None
        with pytest.raises(Exception, match="naive datetime"):
            repo.list_audits(session=session, project="acme", created_after=datetime(2020, 1, 1))


def test_list_filters_and_pagination(database_url: str) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(database_url) as session:
        ids = []
        for i in range(7):
            audit = _audit(session, model_sha256="m1" if i % 2 else "m2")
            audit.created_at = base + timedelta(hours=i)
            audit.status = "succeeded" if i < 4 else "queued"
            audit.verdict = ("fail" if i == 1 else "pass") if i < 4 else None
            ids.append(audit.id)
        _audit(session, project="other")
    with session_scope(database_url) as session:
        items, total = repo.list_audits(session=session, project="acme", limit=3)
        assert total == 7 and [a.id for a in items] == ids[::-1][:3]  # newest first
        items, total = repo.list_audits(session=session, project="acme", limit=3, offset=6)
        assert total == 7 and [a.id for a in items] == [ids[0]]
        assert repo.list_audits(session=session, project="acme", status="queued")[1] == 3
        items, total = repo.list_audits(session=session, project="acme", verdict="fail")
        assert total == 1 and items[0].id == ids[1]
        assert repo.list_audits(session=session, project="acme", model_sha256="m1")[1] == 3
        items, total = repo.list_audits(
            session=session,
            project="acme",
            created_after=base + timedelta(hours=2),
            created_before=base + timedelta(hours=5),
        )
        assert total == 3 and {a.id for a in items} == set(ids[2:5])
        items, total = repo.list_audits(
            session=session, project="acme", status="succeeded", model_sha256="m2"
        )
        assert total == 2 and {a.id for a in items} == {ids[0], ids[2]}
        with pytest.raises(ValueError, match="limit"):
            repo.list_audits(session=session, project="acme", limit=0)
        with pytest.raises(ValueError, match="offset"):
            repo.list_audits(session=session, project="acme", offset=-1)


def test_projects_cannot_see_each_other(database_url: str) -> None:
    with session_scope(database_url) as session:
        audit_id = _audit(session, project="alpha").id
        dataset = repo.create_dataset(
            session=session, project="alpha", sha256=SHA, path="/d.csv", rows=3,
            columns=["a", "b"], size_bytes=10,
        )  # fmt: skip
        assert repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)
    with session_scope(database_url) as session:
        assert repo.store_results(session=session, audit_id=audit_id, results=_results())
    with session_scope(database_url) as session:
        assert repo.get_audit(session=session, project="beta", audit_id=audit_id) is None
        assert repo.list_audits(session=session, project="beta") == ([], 0)
        assert repo.get_results(session=session, project="beta", audit_id=audit_id) is None
        assert repo.get_results(session=session, project="alpha", audit_id=audit_id)
        assert repo.request_cancel(session=session, project="beta", audit_id=audit_id) is None
        assert repo.get_dataset(session=session, project="beta", dataset_id=dataset.id) is None
        got = repo.get_dataset(session=session, project="alpha", dataset_id=dataset.id)
        assert got is not None and got.columns == ["a", "b"]
        with pytest.raises(repo.AuditNotFound):
            repo.add_review(session=session, project="beta", audit_id=audit_id, decision="approve")
    with pytest.raises(repo.ProjectError, match="not a valid project name"):
        with session_scope(database_url) as session:
            _audit(session, project="no spaces")


def test_idempotency_key_returns_the_existing_audit(database_url: str) -> None:
    with session_scope(database_url) as session:
        first = _audit(session, idempotency_key="req-1")
    with session_scope(database_url) as session:
        again = _audit(session, idempotency_key="req-1")
        other_project = _audit(session, project="beta", idempotency_key="req-1")
        fresh = _audit(session, idempotency_key="req-2")
        assert again.id == first.id
        assert other_project.id != first.id and fresh.id != first.id
        with pytest.raises(repo.IdempotencyConflict, match="req-1"):
            _audit(session, idempotency_key="req-1", spec_sha256="b" * 64)

    # Two requests with the same key at the same moment create one audit.
    def submit(_: int) -> str:
        with session_scope(database_url) as s:
            return _audit(s, idempotency_key="req-3").id

    assert len(set(_race(4, submit))) == 1
    with session_scope(database_url) as session:
        assert repo.list_audits(session=session, project="acme")[1] == 3


def test_claim_race_has_exactly_one_winner(database_url: str) -> None:
    with session_scope(database_url) as session:
        audit_ids = [_audit(session).id for _ in range(3)]
    for audit_id in audit_ids:

        def claim(i: int, audit_id: str = audit_id) -> str | None:
            with session_scope(database_url) as s:
                got = repo.claim_audit(
                    session=s, audit_id=audit_id, worker=f"w{i}", lease_seconds=60
                )
                time.sleep(0.05)  # hold the transaction so the claims overlap
                return got.worker if got else None

        winners = [w for w in _race(4, claim) if w is not None]
        assert len(winners) == 1
        with session_scope(database_url) as session:
            audit = repo.load_audit(session=session, audit_id=audit_id)
            assert audit is not None
            assert (audit.status, audit.attempts, audit.worker) == ("running", 1, winners[0])


def test_expired_lease_is_reclaimed_until_max_attempts(database_url: str) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with session_scope(database_url) as session:
        audit_id = _audit(session).id
    for attempt in (1, 2):
        with session_scope(database_url) as session:
            now = t0 + timedelta(minutes=10 * attempt)
            got = repo.claim_audit(
                session=session, audit_id=audit_id, worker=f"w{attempt}", lease_seconds=60,
                max_attempts=2, now=now,
            )  # fmt: skip
            assert got is not None and got.attempts == attempt
            # the lease is live: nobody else can take it
            assert (
                repo.claim_audit(
                    session=session,
                    audit_id=audit_id,
                    worker="x",
                    lease_seconds=60,
                    max_attempts=2,
                    now=now + timedelta(seconds=30),
                )  # fmt: skip
                is None
            )
    late = t0 + timedelta(hours=1)
    with session_scope(database_url) as session:
        assert (
            repo.claim_audit(
                session=session,
                audit_id=audit_id,
                worker="w3",
                lease_seconds=60,
                max_attempts=2,
                now=late,
            )  # fmt: skip
            is None
        )
        assert repo.fail_stale_audits(session=session, max_attempts=2, now=late) == [audit_id]
        audit = repo.load_audit(session=session, audit_id=audit_id)
        assert audit is not None and audit.status == "failed" and "2 attempt" in (audit.error or "")


def test_progress_cancel_and_failure(database_url: str) -> None:
    with session_scope(database_url) as session:
        running = _audit(session).id
        queued = _audit(session).id
        assert repo.claim_audit(session=session, audit_id=running, worker="w1", lease_seconds=5)
    with session_scope(database_url) as session:
        ack = repo.update_progress(
            session=session, audit_id=running, progress=0.5, worker="w1", lease_seconds=600
        )
        assert ack is not None and ack.progress == 0.5 and not ack.cancel_requested
        assert ack.lease_until is not None and ack.lease_until > datetime.now(UTC) + timedelta(
            seconds=500
        )
        wrong_worker = repo.update_progress(
            session=session, audit_id=running, progress=0.6, worker="w2"
        )
        assert wrong_worker is None  # w2 does not hold the lease
        assert None is repo.update_progress(
            session=session, audit_id=queued, progress=0.1
        )  # not running
        with pytest.raises(ValueError, match="progress"):
            repo.update_progress(session=session, audit_id=running, progress=1.5)
    with session_scope(database_url) as session:
        cancelled = repo.request_cancel(session=session, project="acme", audit_id=queued)
        assert cancelled is not None and cancelled.status == "cancelled"
        assert cancelled.finished_at is not None
        flagged = repo.request_cancel(session=session, project="acme", audit_id=running)
        assert flagged is not None and flagged.status == "running" and flagged.cancel_requested
        ack = repo.update_progress(session=session, audit_id=running, progress=0.7, worker="w1")
        assert ack is not None and ack.cancel_requested  # the worker learns to stop
        assert (
            repo.claim_audit(session=session, audit_id=queued, worker="w", lease_seconds=5) is None
        )
        assert repo.mark_cancelled(session=session, audit_id=running)
        assert repo.store_results(session=session, audit_id=running, results=_results()) is False
        assert repo.mark_failed(session=session, audit_id=running, error="late") is False
        failing = _audit(session).id
        assert repo.mark_failed(session=session, audit_id=failing, error="dataset.path: missing")
    with session_scope(database_url) as session:
        audit = repo.load_audit(session=session, audit_id=failing)
        assert audit is not None and (audit.status, audit.error) == (
            "failed", "dataset.path: missing"
        )  # fmt: skip
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_store_results_is_atomic_and_once(database_url: str) -> None:
    with session_scope(database_url) as session:
        audit_id = _audit(session).id
        repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)

    def store(_: int) -> bool:
        with session_scope(database_url) as s:
            ok = repo.store_results(session=s, audit_id=audit_id, results=_results())
            time.sleep(0.05)
            return ok

    assert sorted(_race(3, store)) == [False, False, True]
    with session_scope(database_url) as session:
        assert (
            repo.store_results(session=session, audit_id=audit_id, results=_results("pass"))
            is False
        )
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 1
        findings = repo.list_findings(session=session, audit_id=audit_id)
        assert [(f.group, f.status, f.value, f.ci_low, f.ci_high) for f in findings] == [
            ("b", "fail", 0.5, 0.4, 0.6),
            ("w", "pass", 1.0, None, None),
        ]
        audit = repo.load_audit(session=session, audit_id=audit_id)
        assert audit is not None
        assert (audit.status, audit.verdict, audit.progress) == ("succeeded", "fail", 1.0)
        assert audit.model_sha256 == "m" * 64 and audit.dataset_sha256 == "d" * 64
        assert audit.finished_at is not None and audit.lease_until is None
        assert repo.get_results(session=session, project="acme", audit_id=audit_id) == _results()


def test_store_results_refuses_non_json_numbers_and_writes_nothing(database_url: str) -> None:
    bad = _results()
    bad["findings"][0]["ci"] = [0.4, float("inf")]
    with session_scope(database_url) as session:
        audit_id = _audit(session).id
    with pytest.raises(ValueError, match=r"results\.findings\[0\]\.ci\[1\]"):
        with session_scope(database_url) as session:
            repo.store_results(session=session, audit_id=audit_id, results=bad)
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(FindingRow)) == 0
        with pytest.raises(repo.AuditNotFound):
            repo.store_results(session=session, audit_id="missing", results=_results())


def test_reviews(database_url: str) -> None:
    with session_scope(database_url) as session:
        audit_id = _audit(session).id
        with pytest.raises(ValueError, match="only succeeded audits"):
            repo.add_review(session=session, project="acme", audit_id=audit_id, decision="approve")
        repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)
        repo.store_results(session=session, audit_id=audit_id, results=_results())
        with pytest.raises(ValueError, match="decision: must be one of approve, reject"):
            repo.add_review(session=session, project="acme", audit_id=audit_id, decision="ok")
        _, token = repo.create_token(session=session, project="acme", role="reviewer")
        repo.add_review(
            session=session, project="acme", audit_id=audit_id, decision="reject",
            comment="impact ratio too low", token_id=token.id, reviewer=token.prefix,
        )  # fmt: skip
    with session_scope(database_url) as session:
        reviews = repo.list_reviews(session=session, project="acme", audit_id=audit_id)
        assert [(r.decision, r.comment, r.token_id) for r in reviews] == [
            ("reject", "impact ratio too low", token.id)
        ]
        assert repo.list_reviews(session=session, project="beta", audit_id=audit_id) == []


# ---------------------------------------------------------------- tokens


def test_tokens_are_stored_hashed_verified_and_revocable(database_url: str) -> None:
    with session_scope(database_url) as session:
        plaintext, token = repo.create_token(session=session, project="acme", role="submitter")
        other, _ = repo.create_token(session=session, project="beta", role="admin")
        with pytest.raises(ValueError, match="role: must be one of submitter, reviewer, admin"):
            repo.create_token(session=session, project="acme", role="root")
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith(token.prefix) and len(plaintext) > 40 and plaintext != other
    with db.make_engine(database_url).connect() as conn:  # the secret is nowhere in the table
        rows = conn.execute(select(ApiToken.__table__)).all()
        assert all(plaintext not in str(value) for row in rows for value in row)
        assert all(plaintext[len(token.prefix) :] not in str(v) for row in rows for v in row)
    with session_scope(database_url) as session:
        found = repo.verify_token(session=session, token=plaintext)
        assert found is not None and (found.id, found.project, found.role) == (
            token.id, "acme", "submitter"
        )  # fmt: skip
        assert found.last_used_at is not None
        assert repo.verify_token(session=session, token=plaintext[:-1]) is None
        assert repo.verify_token(session=session, token="") is None
        assert repo.revoke_token(session=session, project="beta", token_id=token.id) is False
        assert repo.revoke_token(session=session, project="acme", token_id=token.id) is True
        assert repo.revoke_token(session=session, project="acme", token_id=token.id) is False
    with session_scope(database_url) as session:
        assert repo.verify_token(session=session, token=plaintext) is None
        assert repo.verify_token(session=session, token=other) is not None
        listed = repo.list_tokens(session=session, project="acme")
        assert [(t.id, t.revoked_at is not None) for t in listed] == [(token.id, True)]


# ---------------------------------------------------------------- schedules


def test_schedules_fire_once_per_occurrence(database_url: str) -> None:
    t0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # a Monday
    with session_scope(database_url) as session:
        with pytest.raises(repo.ScheduleError, match="cron: 'every day'"):
            repo.create_schedule(
                session=session, project="acme", name="x", cron="every day", spec=SPEC, now=t0
            )
        weekly = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1", spec=SPEC, now=t0
        )
        repo.create_schedule(
            session=session, project="acme", name="off", cron="* * * * *", spec=SPEC,
            enabled=False, now=t0,
        )  # fmt: skip
        with pytest.raises(repo.ScheduleError, match="already exists"):
            repo.create_schedule(
                session=session, project="acme", name="weekly", cron="0 3 * * *", spec=SPEC
            )
    assert weekly.next_run_at == datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    fire = datetime(2026, 1, 5, 3, 0, 30, tzinfo=UTC)
    with session_scope(database_url) as session:
        assert repo.due_schedules(session=session, now=t0) == []
        due = repo.due_schedules(session=session, now=fire)
        assert [s.name for s in due] == ["weekly"]
        assert repo.advance_schedule(
            session=session, schedule_id=weekly.id, audit_id=None, now=fire
        )
        audit = _audit(session, schedule_id=weekly.id)
        assert not repo.advance_schedule(
            session=session, schedule_id=weekly.id, audit_id=audit.id, now=fire
        )
        got = repo.get_schedule(session=session, project="acme", schedule_id=weekly.id)
        assert got is not None
        assert got.next_run_at == datetime(2026, 1, 12, 3, 0, tzinfo=UTC)
        assert got.last_run_at == fire
        assert repo.get_schedule(session=session, project="beta", schedule_id=weekly.id) is None
        assert [s.name for s in repo.list_schedules(session=session, project="acme")] == [
            "off", "weekly"
        ]  # fmt: skip


def test_json_round_trip_keeps_nesting_and_unicode(database_url: str) -> None:
    spec = {"name": "é-ü", "nested": {"list": [1, 2.5, None, True], "s": "日本"}}
    with session_scope(database_url) as session:
        audit_id = _audit(session, spec=spec).id
    with session_scope(database_url) as session:
        audit = repo.load_audit(session=session, audit_id=audit_id)
        assert audit is not None and audit.spec == spec
        if session.get_bind().dialect.name == "postgresql":
            kind = session.execute(text("SELECT jsonb_typeof(spec) FROM audits")).scalar_one()
            assert kind == "object"  # stored as JSONB


@pytest.mark.postgres
def test_pooled_connection_idle_past_the_threshold_is_pinged_and_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No per-checkout ping any more: a connection killed while idle is replaced on checkout
    once it idled longer than IDLE_PING_S; a busy pool reconnects after one failed statement.
    """
    db.dispose_engines()
    engine = db.make_engine(postgres_url)
    assert engine.pool._pre_ping is False  # type: ignore[attr-defined]

    def backend_pid() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def kill(pid: int) -> None:
        with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as other:
            assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        time.sleep(0.2)

    first = backend_pid()
    assert backend_pid() == first  # pooled: the same connection comes back
    kill(first)
    monkeypatch.setattr(db, "IDLE_PING_S", 0.0)  # idle long enough: pinged, replaced
    second = backend_pid()
    assert second != first
    monkeypatch.setattr(db, "IDLE_PING_S", 3600.0)  # fresh: not pinged, fails once
    kill(second)
    with pytest.raises(Exception, match="(?i)terminat|closed|server"):
        backend_pid()
    assert backend_pid() not in (first, second)  # the pool was invalidated and reconnects
    db.dispose_engines()


def test_create_audit_with_project_exists_skips_the_project_row(database_url: str) -> None:
    with session_scope(database_url) as session:
        repo.create_token(session=session, project="acme", role="submitter")
    with session_scope(database_url) as session:
        audit = repo.create_audit(
            session=session,
            project="acme",
            spec={"name": "a"},
            name="a",
            domain="hiring",
            spec_sha256="0" * 64,
            project_exists=True,
        )
        assert audit.project == "acme"
    with pytest.raises(Exception, match="(?i)foreign key"), session_scope(database_url) as s:
        repo.create_audit(  # a wrong claim is still refused by the foreign key
            session=s,
            project="nobody",
            spec={"name": "a"},
            name="a",
            domain="hiring",
            spec_sha256="0" * 64,
            project_exists=True,
        )
