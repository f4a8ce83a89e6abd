"""The dashboard's queries and sessions on SQLite and PostgreSQL: review states, filters,
runs of a model, tenancy, session expiry and revocation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from audit.storage import repo, session_scope
from audit.storage.dashboard import AuditFilters, audit_runs, list_audit_page, review_states
from audit.storage.models import Audit, utcnow
from audit.storage.ui_sessions import create_ui_session, delete_ui_session, get_ui_user

SPEC = {"name": "hiring-test", "domain": "hiring"}


def _finished(session: Any, name: str, model: str, verdict: str = "fail") -> Audit:
    audit = repo.create_audit(
        session=session, project="acme", spec=SPEC, name=name, domain="hiring",
        spec_sha256=name.ljust(64, "0"),
    )  # fmt: skip
    repo.claim_audit(session=session, audit_id=audit.id, worker="w", lease_seconds=60)
    results = {
        "schema_version": 1,
        "verdict": verdict,
        "model": {"kind": "sklearn", "sha256": model},
        "dataset": {"sha256": "d" * 64, "rows": 10},
        "findings": [],
    }
    repo.store_results(session=session, audit_id=audit.id, results=results)
    return audit


def _names(rows: list[Audit]) -> set[str]:
    return {a.name for a in rows}


def test_review_states_filters_and_runs(database_url: str) -> None:
    with session_scope(database_url) as session:
        a = _finished(session, "a", "a" * 64)
        b = _finished(session, "b", "a" * 64, verdict="pass")
        c = _finished(session, "c", "c" * 64)
        queued = repo.create_audit(
            session=session, project="acme", spec=SPEC, name="q", domain="hiring",
            spec_sha256="q" * 64,
        )  # fmt: skip
        repo.create_audit(
            session=session, project="other", spec=SPEC, name="x", domain="hiring",
            spec_sha256="x" * 64,
        )  # fmt: skip
        for decision in ("reject", "approve"):  # the latest review decides: approved
            repo.add_review(session=session, project="acme", audit_id=a.id, decision=decision)
        repo.add_review(session=session, project="acme", audit_id=b.id, decision="reject")
        ids = (a.id, b.id, c.id, queued.id)
    with session_scope(database_url) as session:
        audits = [session.get(Audit, i) for i in ids]
        states = review_states(session=session, audits=[x for x in audits if x is not None])
        assert [states[i] for i in ids] == ["approved", "rejected", "awaiting", None]

        def page(**kw: Any) -> set[str]:
            rows, total = list_audit_page(
                session=session, project="acme", filters=AuditFilters(**kw)
            )
            assert total == len(rows)
            return _names(rows)

        assert page() == {"a", "b", "c", "q"}
        assert page(review="approved") == {"a"}
        assert page(review="rejected") == {"b"}
        assert page(review="awaiting") == {"c"}
        assert page(verdict="pass") == {"b"}
        assert page(model="aaaa") == {"a", "b"}
        assert page(model="%") == set()  # a LIKE wildcard is a literal here
        assert page(status="queued") == {"q"}
        assert page(created_after=utcnow() + timedelta(hours=1)) == set()
        runs = audit_runs(session=session, project="acme", model_sha256="a" * 64)
        assert [r.name for r, _ in runs] == ["a", "b"]  # oldest first
        assert runs[1][1]["verdict"] == "pass"
        assert audit_runs(session=session, project="other", model_sha256="a" * 64) == []


def test_sessions_expire_end_with_their_token_and_on_sign_out(database_url: str) -> None:
    with session_scope(database_url) as session:
        _, token = repo.create_token(session=session, project="acme", role="reviewer", name="Rita")
        live = create_ui_session(session=session, token_id=token.id, lifetime=timedelta(hours=1))
        old = create_ui_session(session=session, token_id=token.id, lifetime=timedelta(0))
        token_id = token.id
    with session_scope(database_url) as session:
        user = get_ui_user(session=session, session_id=live)
        assert user is not None and (user.project, user.role, user.name) == (
            "acme",
            "reviewer",
            "Rita",
        )
        assert get_ui_user(session=session, session_id=old) is None
        assert get_ui_user(session=session, session_id="") is None
        assert get_ui_user(session=session, session_id=live + "x") is None
    with session_scope(database_url) as session:
        assert repo.revoke_token(session=session, project="acme", token_id=token_id)
    with session_scope(database_url) as session:
        assert get_ui_user(session=session, session_id=live) is None
        assert delete_ui_session(session=session, session_id=live)
        assert not delete_ui_session(session=session, session_id=live)
