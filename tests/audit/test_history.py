"""History of a model fingerprint and comparison from storage, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from audit.storage import repo
from audit.storage.db import session_scope
from audit.storage.history import NotComparable, compare_audits, history
from tests.audit.test_storage import _audit

MODEL = "f" * 64


def _doc(ratio: float, ci: list[float], selected: int) -> dict[str, Any]:
    return {
        "schema_version": 1, "verdict": "pass" if ratio >= 0.8 else "fail", "findings": [],
        "model": {"kind": "sklearn", "sha256": MODEL},
        "probes": [{"kind": "demographic", "attribute": "sex", "summary": {}, "groups": [
            {"group": "f", "n": 100, "selected": selected, "selection_rate": selected / 100,
             "impact_ratio": ratio, "impact_ratio_ci": ci},
            {"group": "m", "n": 100, "selected": 50, "selection_rate": 0.5,
             "impact_ratio": 1.0, "impact_ratio_ci": None},
        ]}],
    }  # fmt: skip


def _run(url: str, project: str, document: dict[str, Any], **kw: Any) -> str:
    with session_scope(url) as session:
        audit_id = _audit(session, project=project, model_sha256=MODEL, **kw).id
        repo.claim_audit(session=session, audit_id=audit_id, worker="w", lease_seconds=60)
        repo.store_results(session=session, audit_id=audit_id, results=document)
    return audit_id


def test_model_history_is_a_trend_per_group_oldest_first(database_url: str) -> None:
    first = _run(database_url, "acme", _doc(0.5, [0.4, 0.6], 25))
    second = _run(database_url, "acme", _doc(0.9, [0.8, 1.0], 45))
    _run(database_url, "beta", _doc(0.1, [0.0, 0.2], 5))  # another tenant's run
    with session_scope(database_url) as session:
        queued = _audit(session, model_sha256=MODEL).id  # not finished: not history
        repo.add_review(session=session, project="acme", audit_id=second,
                        decision="approve", reviewer="R")  # fmt: skip
        found = history(session, project="acme", model_sha256=MODEL)
        assert [r["id"] for r in found["runs"]] == [first, second]
        assert queued not in [r["id"] for r in found["runs"]]
        assert [r["review_state"] for r in found["runs"]] == ["awaiting review", "approved"]
        female = next(s for s in found["series"] if s["group"] == "f")
        assert [(p["audit_id"], p["impact_ratio"], p["ci"]) for p in female["points"]] == [
            (first, 0.5, [0.4, 0.6]),
            (second, 0.9, [0.8, 1.0]),
        ]
        latest = history(session, project="acme", model_sha256=MODEL, limit=1)
        assert [r["id"] for r in latest["runs"]] == [second]
        with pytest.raises(ValueError, match="exactly one"):
            history(session, project="acme")


def test_compare_from_storage_needs_results(database_url: str) -> None:
    a = _run(database_url, "acme", _doc(0.5, [0.4, 0.6], 25))
    b = _run(database_url, "acme", _doc(0.9, [0.8, 1.0], 45))
    with session_scope(database_url) as session:
        first, second = (repo.load_audit(session=session, audit_id=i) for i in (a, b))
        assert first is not None and second is not None
        out = compare_audits(session, first, second)
        assert (out["a"]["id"], out["b"]["id"]) == (a, b)
        rows = {(m["group"], m["metric"]): m for m in out["metrics"]}
        assert rows[("f", "selection_rate")]["significant"] is True
        assert rows[("f", "impact_ratio")]["significant"] is True  # [0.4, 0.6] vs [0.8, 1.0]
        assert rows[("m", "impact_ratio")]["significant"] is None  # the reference: no CI
        queued = _audit(session)
        with pytest.raises(NotComparable, match="no results"):
            compare_audits(session, first, queued)
