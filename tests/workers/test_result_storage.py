"""Storing a result: the size limit, what the database refuses, transient errors, the report."""

from __future__ import annotations

import gzip
import os
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from audit.engine.run import compute_results
from audit.reports.html import render_html
from audit.settings import get_settings
from audit.storage import db, session_scope
from audit.storage.errors import (
    MSG_RESULT_TOO_LARGE,
    is_transient_db_error,
    unstorable_reason,
)
from audit.storage.models import Report, ReportChunk
from audit.storage.reports import REPORT_CHUNK_BYTES, get_report, iter_report, store_report
from tests.factories import spec_for
from tests.integration.conftest import free_port
from tests.workers.conftest import add_audit, add_dataset, audit_row, result_count
from workers import runner
from workers.lease import retry_transient

pytestmark = pytest.mark.postgres


def _db_error(statement: str) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as caught:
        with session_scope() as session:
            session.execute(sa.text(statement))
    return caught.value


def test_result_over_the_size_limit_fails_once_naming_the_limit(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIASAUDIT_MAX_RESULT_BYTES", "2048")
    get_settings.cache_clear()
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    row = audit_row(audit_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error.startswith("results: the audit's results are ")
    assert "over the limit of 2,048 bytes (BIASAUDIT_MAX_RESULT_BYTES)" in row.error
    assert runner.execute_audit(audit_id, worker="w2") == "skipped"  # never retried
    assert audit_row(audit_id).attempts == 1 and result_count(audit_id) == 0
    assert "{size" not in MSG_RESULT_TOO_LARGE.format(size=1, limit=2)


def test_result_the_database_refuses_fails_at_once_without_retry(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.engine.run

    def with_nul(spec: Any, **kwargs: Any) -> dict[str, Any]:
        results = compute_results(spec, **kwargs)
        results["audit"]["name"] = "nul\u0000inside"  # jsonb cannot hold U+0000
        return results

    monkeypatch.setattr(audit.engine.run, "compute_results", with_nul)
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    assert runner.execute_audit(audit_id, worker="w1") == "failed"
    row = audit_row(audit_id)
    assert (row.status, row.attempts, result_count(audit_id)) == ("failed", 1, 0)
    assert row.error.startswith("results: the database refused to store the audit's results")
    assert "22P05" in row.error and "not retried" in row.error


def test_storage_errors_are_told_apart(service_env: dict[str, Any]) -> None:
    too_many = _db_error(f"SELECT concat({', '.join(['1'] * 101)})")  # 54023
    assert unstorable_reason(too_many) is not None and not is_transient_db_error(too_many)
    assert str(unstorable_reason(too_many)).startswith("54023: ")
    bad_json = _db_error("SELECT '\"\\u0000\"'::jsonb")  # 22P05
    assert str(unstorable_reason(bad_json)).startswith("22P05: ")
    assert not is_transient_db_error(bad_json)
    syntax = _db_error("SELEC 1")  # a bug, not the data, not transient: the crash path
    assert unstorable_reason(syntax) is None and not is_transient_db_error(syntax)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(sa.exc.OperationalError) as refused:
        with db.make_engine(url).connect():
            pass
    assert is_transient_db_error(refused.value) and unstorable_reason(refused.value) is None
    assert not is_transient_db_error(ValueError("not a database error"))


def test_retry_transient_rides_out_errors_that_pass(service_env: dict[str, Any]) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            with db.make_engine(url).connect():  # connection refused
                pass
        return "stored"

    assert retry_transient(flaky, what="a test", budget=10) == "stored" and len(calls) == 3

    def down() -> str:
        calls.append(1)
        with db.make_engine(url).connect():
            return "never"

    calls.clear()
    with pytest.raises(sa.exc.OperationalError):  # the budget runs out: the error propagates
        retry_transient(down, what="a test", budget=0.5)
    assert 2 <= len(calls) <= 5
    with pytest.raises(ValueError):  # anything else propagates at once
        retry_transient(lambda: int("x"), what="a test", budget=10)


def test_report_is_rendered_once_with_the_results_and_streams_back(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.reports.html

    rendered: list[str] = []

    def recording(results: dict[str, Any]) -> str:
        rendered.append(render_html(results))
        return rendered[-1]

    monkeypatch.setattr(audit.reports.html, "render_html", recording)
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    assert runner.execute_audit(audit_id, worker="w1") == "succeeded"
    assert len(rendered) == 1  # once, by the worker, from the engine's document
    with session_scope() as session:
        stored = get_report(session=session, project="acme", audit_id=audit_id, format="html")
        foreign = get_report(session=session, project="other", audit_id=audit_id, format="html")
    assert foreign is None
    assert stored is not None
    html = b"".join(iter_report(stored))
    assert html == rendered[0].encode() and audit_id.encode() in html
    assert len(html) == stored.size_bytes and stored.media_type.startswith("text/html")
    assert gzip.decompress(b"".join(iter_report(stored, decompress=False))) == html
    assert runner.execute_audit(audit_id, worker="w2") == "skipped"
    with session_scope() as session:  # a duplicate delivery stores no second report
        assert session.scalar(select(func.count()).select_from(Report)) == 1
    assert len(rendered) == 1


def test_large_report_is_stored_in_pieces_and_read_back_piece_by_piece(
    service_env: dict[str, Any],
) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    content = os.urandom(3 * REPORT_CHUNK_BYTES // 2).hex().encode()  # barely compressible
    with session_scope() as session:
        assert store_report(session=session, audit_id=audit_id, format="pdf", content=content)
        assert not store_report(session=session, audit_id=audit_id, format="pdf", content=b"x")
    with session_scope() as session:
        stored = get_report(session=session, project="acme", audit_id=audit_id, format="pdf")
        pieces = session.scalar(select(func.count()).select_from(ReportChunk))
    assert stored is not None and stored.chunks == pieces and pieces >= 2
    assert stored.media_type == "application/pdf" and stored.size_bytes == len(content)
    parts = list(iter_report(stored))
    assert b"".join(parts) == content
    assert max(len(p) for p in parts) <= REPORT_CHUNK_BYTES
