"""The event log on SQLite and PostgreSQL: every action logged with its person, the hash
chain, append-only triggers, concurrent appends, and ``biasaudit verify-log`` catching a
tampered result and a tampered entry (each named)."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import pytest
from sqlalchemy import exc, select, text

from audit.cli.main import main
from audit.storage import db, repo
from audit.storage.db import session_scope
from audit.storage.events import GENESIS, append_event, canonical_json, verify_log
from audit.storage.models import Event
from tests.audit.test_storage import _audit, _results


def _lifecycle(url: str) -> str:
    """A key, an audit submitted, started, finished and reviewed; returns the audit id."""
    with session_scope(url) as session:
        _, key = repo.create_token(
            session=session, project="acme", role="submitter", name="Ada Lovelace", actor="cli x"
        )
        audit_id = _audit(session, token_id=key.id, submitted_by="Ada Lovelace").id
    with session_scope(url) as session:
        assert repo.claim_audit(session=session, audit_id=audit_id, worker="w1", lease_seconds=60)
    with session_scope(url) as session:
        assert repo.store_results(session=session, audit_id=audit_id, results=_results())
    with session_scope(url) as session:
        repo.add_review(
            session=session, project="acme", audit_id=audit_id, decision="approve",
            reviewer="Grace Hopper",
        )  # fmt: skip
    return audit_id


def _events(url: str) -> list[Event]:
    with session_scope(url) as session:
        return list(session.scalars(select(Event).order_by(Event.seq)))


def test_every_action_is_logged_with_its_person_in_a_hash_chain(database_url: str) -> None:
    audit_id = _lifecycle(database_url)
    events = _events(database_url)
    assert [(e.action, e.actor) for e in events] == [
        ("key.created", "cli x"),
        ("audit.submitted", "Ada Lovelace"),
        ("audit.started", "worker w1"),
        ("audit.finished", "worker"),
        ("audit.reviewed", "Grace Hopper"),
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_sha256 == GENESIS
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_sha256 == before.sha256
    # the finished entry holds the hash of the stored document (canonical JSON)
    with session_scope(database_url) as session:
        stored = repo.get_results(session=session, project="acme", audit_id=audit_id)
    assert stored is not None
    assert events[3].result_sha256 == hashlib.sha256(canonical_json(stored)).hexdigest()
    # an entry's hash is over its own canonical JSON, so anyone can recompute it
    first = events[0]
    body = {"seq": 1, "at": first.at.isoformat(timespec="microseconds"), "project": "acme",
            "actor": "cli x", "action": "key.created", "subject": first.subject,
            "audit_id": None, "result_sha256": None, "detail": first.detail,
            "prev_sha256": GENESIS}  # fmt: skip
    assert first.sha256 == hashlib.sha256(canonical_json(body)).hexdigest()
    with session_scope(database_url) as session:
        report = verify_log(session=session)
    assert report.intact and report.entries == 5 and report.results == 1


def test_cancel_failure_and_revocation_are_logged(database_url: str) -> None:
    with session_scope(database_url) as session:
        _, key = repo.create_token(session=session, project="acme", role="admin")
        queued = _audit(session).id
        doomed = _audit(session).id
    with session_scope(database_url) as session:
        repo.request_cancel(session=session, project="acme", audit_id=queued, actor="Ada")
        repo.mark_failed(session=session, audit_id=doomed, error="boom")
        assert repo.revoke_token(session=session, project="acme", token_id=key.id, actor="Bob")
    tail = [(e.action, e.actor, e.audit_id) for e in _events(database_url)][-3:]
    assert tail == [
        ("audit.cancelled", "Ada", queued),
        ("audit.failed", "worker", doomed),
        ("key.revoked", "Bob", None),
    ]


def _app_write(url: str, statement: str) -> None:
    with db.make_engine(url).begin() as conn:
        conn.execute(text(statement))


@pytest.mark.parametrize("statement", ["UPDATE events SET actor = 'Mallory'", "DELETE FROM events"])
def test_the_application_connection_cannot_update_or_delete_the_log(
    database_url: str, statement: str
) -> None:
    _lifecycle(database_url)
    with pytest.raises(exc.DatabaseError, match="append-only"):
        _app_write(database_url, statement)
    assert len(_events(database_url)) == 5


def _tamper_entry(url: str, seq: int) -> None:
    """What a superuser can do: switch the trigger off, edit an entry, switch it on."""
    engine = db.make_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
            conn.execute(text("UPDATE events SET actor = 'Mallory' WHERE seq = :s"), {"s": seq})
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
        else:
            conn.execute(text("DROP TRIGGER events_no_update"))
            conn.execute(text("UPDATE events SET actor = 'Mallory' WHERE seq = :s"), {"s": seq})


def _tamper_result(url: str, audit_id: str) -> None:
    engine = db.make_engine(url)
    setter = (
        "jsonb_set(document, '{verdict}', '\"pass\"')"
        if engine.dialect.name == "postgresql"
        else "json_set(document, '$.verdict', 'pass')"
    )
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE results SET document = {setter} WHERE audit_id = :a"), {"a": audit_id}
        )


def _verify_cli(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    from audit.settings import get_settings

    monkeypatch.setenv("BIASAUDIT_DATABASE_URL", url)
    get_settings.cache_clear()
    code = main(["verify-log"])
    return code, capsys.readouterr().out


def test_verify_log_names_an_edited_result_and_an_edited_entry(
    database_url: str,
    clean_settings: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    audit_id = _lifecycle(database_url)
    code, out = _verify_cli(database_url, clean_settings, capsys)
    assert code == 0 and "event log intact: 5 entries, 1 results" in out

    _tamper_result(database_url, audit_id)
    code, out = _verify_cli(database_url, clean_settings, capsys)
    assert code == 1
    assert f"entry 4: result of audit {audit_id} was edited" in out
    assert out.count("TAMPERED") == 1

    _tamper_entry(database_url, 2)
    code, out = _verify_cli(database_url, clean_settings, capsys)
    assert code == 1
    assert "entry 2: audit.submitted audit/" in out and "the entry was edited" in out
    assert f"result of audit {audit_id} was edited" in out  # still named


def test_verify_log_catches_a_removed_entry_and_a_rewritten_chain(database_url: str) -> None:
    _lifecycle(database_url)
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        else:
            conn.execute(text("DROP TRIGGER events_no_delete"))
        conn.execute(text("DELETE FROM events WHERE seq = 3"))
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
    with session_scope(database_url) as session:
        report = verify_log(session=session)
    assert [b.seq for b in report.breaks] == [4]
    assert "sequence gap: expected 3" in str(report.breaks[0])


def test_a_result_stored_without_its_entry_is_reported(database_url: str) -> None:
    with session_scope(database_url) as session:
        audit_id = _audit(session).id
    engine = db.make_engine(database_url)
    with engine.begin() as conn:  # written around the application: no log entry
        conn.execute(
            text("INSERT INTO results (audit_id, document, created_at) VALUES (:a, :d, :t)"),
            {"a": audit_id, "d": json.dumps(_results()), "t": "2026-01-01 00:00:00"},
        )
    with session_scope(database_url) as session:
        report = verify_log(session=session)
    assert not report.intact
    assert f"result of audit {audit_id} has no audit.finished entry" in str(report.breaks[0])


def test_concurrent_appends_keep_one_unbroken_chain(database_url: str) -> None:
    n, per = 6, 10
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            for j in range(per):
                with session_scope(database_url) as session:
                    append_event(
                        session=session, action="schedule.changed", actor=f"t{i}",
                        subject=f"schedule/{i}-{j}", project="acme",
                    )  # fmt: skip
        except BaseException as error:  # re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    events = _events(database_url)
    assert [e.seq for e in events] == list(range(1, n * per + 1))
    with session_scope(database_url) as session:
        assert verify_log(session=session).intact


def test_events_are_listed_per_project_newest_first(database_url: str) -> None:
    audit_id = _lifecycle(database_url)
    with session_scope(database_url) as session:
        _audit(session, project="beta")
        rows, total = repo_list(session, "acme", None)
        assert total == 5 and [e.seq for e in rows] == [5, 4, 3, 2, 1]
        rows, total = repo_list(session, "acme", audit_id)
        assert total == 4 and rows[0].action == "audit.reviewed"
        rows, total = repo_list(session, "beta", None)
        assert total == 1 and rows[0].action == "audit.submitted"


def repo_list(session: Any, project: str, audit_id: str | None) -> tuple[list[Event], int]:
    from audit.storage.events import list_events

    return list_events(session=session, project=project, audit_id=audit_id)


def test_storage_refuses_a_review_by_the_submitting_person(database_url: str) -> None:
    with session_scope(database_url) as session:
        _, mine = repo.create_token(session=session, project="acme", role="admin", name="Ada L")
        _, also = repo.create_token(session=session, project="acme", role="reviewer", name="ada l")
        audit_id = _audit(session, token_id=mine.id, submitted_by="Ada L").id
        repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)
        repo.store_results(session=session, audit_id=audit_id, results=_results())
    for token in (mine, also):
        with (
            session_scope(database_url) as session,
            pytest.raises(repo.SelfReview, match="(?i)ada l submitted"),
        ):
            repo.add_review(
                session=session, project="acme", audit_id=audit_id, decision="approve",
                token_id=token.id, reviewer=token.name,
            )  # fmt: skip
    assert "audit.reviewed" not in [e.action for e in _events(database_url)]


def test_audits_filter_by_review_state_and_schedule(database_url: str) -> None:
    ids = []
    with session_scope(database_url) as session:
        for _ in range(3):
            audit_id = _audit(session).id
            repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)
            repo.store_results(session=session, audit_id=audit_id, results=_results())
            ids.append(audit_id)
    reviews = {ids[0]: ["reject", "approve"], ids[1]: ["approve", "reject"]}
    for audit_id, decisions in reviews.items():
        for decision in decisions:
            with session_scope(database_url) as session:
                repo.add_review(session=session, project="acme", audit_id=audit_id,
                                decision=decision, reviewer="R")  # fmt: skip
    with session_scope(database_url) as session:
        for state, expected in [("approved", ids[0]), ("rejected", ids[1]),
                                ("awaiting review", ids[2])]:  # fmt: skip
            rows, total = repo.list_audits(session=session, project="acme", review_state=state)
            assert ([a.id for a in rows], total) == ([expected], 1)
        with pytest.raises(ValueError, match="review_state"):
            repo.list_audits(session=session, project="acme", review_state="maybe")
        rows, _ = repo.list_audits(session=session, project="acme", schedule_id="none")
        assert rows == []
