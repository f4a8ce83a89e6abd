"""A submission and a DELETE of the dataset it names, at the same moment, on PostgreSQL.

The submission share-locks the dataset row (``FOR SHARE``) in the transaction that
inserts the audit; the erasure locks it ``FOR UPDATE``. Whichever takes the row first
wins; the other waits for its commit, then sees it: the erasure answers 409 (the
audit is queued), or the submission is refused with the deletion message. Each test
holds one transaction open until the other session is seen waiting on a lock
(``pg_stat_activity``), so the order is forced, not left to timing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from audit.api.commit_batch import record_batch
from audit.api.errors import ApiError
from audit.api.group_commit import Accepted, Submission
from audit.api.submission import parse_submitted
from audit.settings import Settings
from audit.storage import db, repo
from audit.storage.erasure import InUse, erase
from audit.storage.models import Audit
from tests.factories import spec_for

pytestmark = pytest.mark.postgres

COLUMNS = ["sex", "race", "qualified", "advanced"]


@pytest.fixture
def pg(postgres_url: str, tmp_path: Path) -> Any:
    from tests.conftest import _truncate_all

    settings = Settings(database_url=postgres_url, artifact_dir=tmp_path, data_dir=tmp_path)
    with db.session_scope(postgres_url) as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
        path = tmp_path / "acme" / "pool.csv"
        path.parent.mkdir(parents=True)
        path.write_text("sex,race,qualified,advanced\n")
        ds = repo.create_dataset(
            session=session,
            project="acme",
            sha256="0" * 64,
            path=str(path),
            rows=1,
            columns=COLUMNS,
            size_bytes=1,
        ).id
    try:
        yield settings, token, ds
    finally:
        _truncate_all(postgres_url)


def _submission(token: str, dataset_id: str) -> Submission:
    raw = spec_for(dataset_id)
    return Submission(token=token, raw=raw, spec=parse_submitted(raw))


def _wait_for_a_lock_wait(url: str, timeout: float = 60.0) -> None:
    """Until a session of this database waits on a lock (the other side of the race)."""
    deadline = time.monotonic() + timeout
    with db.make_engine(url).connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.05)
    raise AssertionError("the other session never waited for the row lock")


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - the test inspects what happened
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _erase(settings: Settings, dataset_id: str) -> Any:
    with db.session_scope(settings.db_url) as session:
        return erase(
            session=session,
            settings=settings,
            project="acme",
            kind="dataset",
            item_id=dataset_id,
            actor="ada",
        )


def _audits(url: str) -> list[str]:
    with db.session_scope(url) as session:
        return list(session.scalars(select(Audit.id)))


def test_submission_first_the_deletion_answers_in_use(pg: Any) -> None:
    settings, token, ds = pg
    factory = db.get_sessionmaker(settings.db_url)
    with factory() as session:
        session.begin()
        outcome = record_batch(session, [_submission(token, ds)], settings)[0]
        assert isinstance(outcome, Accepted)  # recorded, not yet committed
        thread, out = _in_thread(lambda: _erase(settings, ds))
        _wait_for_a_lock_wait(settings.db_url)  # the erasure waits for the dataset row
        session.commit()
    thread.join(60)
    assert len(out) == 1 and isinstance(out[0], InUse), out
    assert out[0].audits == [outcome.audit_id]
    with db.session_scope(settings.db_url) as session:
        assert repo.get_dataset(session=session, project="acme", dataset_id=ds) is not None


def test_deletion_first_the_submission_is_refused_as_deleted(pg: Any) -> None:
    settings, token, ds = pg
    factory = db.get_sessionmaker(settings.db_url)

    def submit() -> Any:
        with factory() as other, other.begin():
            return record_batch(other, [_submission(token, ds)], settings)[0]

    with factory() as session:
        session.begin()
        row = erase(
            session=session,
            settings=settings,
            project="acme",
            kind="dataset",
            item_id=ds,
            actor="ada",
        )
        assert row is not None  # marked deleted, not yet committed
        thread, out = _in_thread(submit)
        _wait_for_a_lock_wait(settings.db_url)  # the submission waits for the dataset row
        session.commit()
    thread.join(60)
    assert len(out) == 1 and isinstance(out[0], ApiError), out
    assert out[0].status_code == 404 and out[0].field == "dataset.id"
    assert "was deleted at" in out[0].detail and "by ada" in out[0].detail
    assert _audits(settings.db_url) == []


def test_on_sqlite_a_submission_waits_for_the_deletion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has no row locks: both sides take the write lock first (``lock_writes``), so
    a submission started while an erasure is in its transaction waits for its commit."""
    from audit.storage import erasure

    url = f"sqlite:///{tmp_path / 'ba.db'}"
    db.upgrade(url)
    settings = Settings(database_url=url, artifact_dir=tmp_path, data_dir=tmp_path)
    with db.session_scope(url) as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
        ds = repo.create_dataset(
            session=session,
            project="acme",
            sha256="0" * 64,
            path=str(tmp_path / "acme" / "pool.csv"),
            rows=1,
            columns=COLUMNS,
            size_bytes=1,
        ).id
    checking, go = threading.Event(), threading.Event()
    real = erasure.blockers

    def held(**kwargs: Any) -> Any:  # the erasure, inside its transaction, holds here
        found = real(**kwargs)
        checking.set()
        assert go.wait(60)
        return found

    monkeypatch.setattr(erasure, "blockers", held)
    deleting, deleted = _in_thread(lambda: _erase(settings, ds))
    assert checking.wait(60)

    def submit() -> Any:
        with db.get_sessionmaker(url)() as other, other.begin():
            return record_batch(other, [_submission(token, ds)], settings)[0]

    submitting, out = _in_thread(submit)
    submitting.join(0.5)
    assert out == []  # waiting for the erasure's write lock (it would have answered by now)
    go.set()
    deleting.join(60)
    submitting.join(60)
    assert deleted and deleted[0] is not None and not isinstance(deleted[0], Exception), deleted
    assert len(out) == 1 and isinstance(out[0], ApiError), out
    assert out[0].status_code == 404 and "was deleted at" in out[0].detail
    assert _audits(url) == []
    db.dispose_engines()
