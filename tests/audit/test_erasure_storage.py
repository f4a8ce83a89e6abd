"""The storage side of erasure on SQLite and PostgreSQL: references, usage, erase.

The migration's columns, the spec-text prefilter of :func:`usage` (a JSON column cast
to text on both backends) and the in-use check run here against each database; the
routes are tested in ``tests/audit/api/test_erasure_api.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.settings import Settings
from audit.storage import repo
from audit.storage.db import session_scope
from audit.storage.erasure import InUse, erase, find_deleted
from audit.storage.events import verify_log
from audit.storage.inventory import list_items, spec_refs, usage

LDA = {"kind": "lda-search", "attribute": "sex", "train_id": "t-1"}


def _dataset(session: Any, settings: Settings, name: str) -> str:
    path = settings.data_path / "acme" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a\n1\n")
    path.with_name(path.name + ".columnar.parquet").write_bytes(b"PAR1")
    row = repo.create_dataset(
        session=session,
        project="acme",
        sha256=name[0] * 64,
        path=str(path),
        rows=1,
        columns=["a"],
        size_bytes=4,
        dataset_id=name,
    )
    return row.id


def _audit(session: Any, dataset_id: str, *, status: str = "succeeded") -> str:
    spec = {"name": "x", "domain": "hiring", "dataset": {"id": dataset_id}}
    row = repo.create_audit(
        session=session,
        project="acme",
        spec=spec,
        name="x",
        domain="hiring",
        spec_sha256="0" * 64,
        status=status,
    )
    return row.id


def test_spec_refs_reads_dataset_probe_uploads_and_model() -> None:
    spec = {"dataset": {"id": "d-1"}, "model": {"id": "m-1"}, "probes": [LDA, "junk"]}
    assert spec_refs(spec) == {"dataset": {"d-1", "t-1"}, "model": {"m-1"}}
    assert spec_refs(["not", "a", "spec"]) == {"dataset": set(), "model": set()}


def test_usage_and_erase_on_both_backends(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, artifact_dir=tmp_path)
    with session_scope(database_url) as session:
        used, idle = _dataset(session, settings, "used"), _dataset(session, settings, "idle")
        _audit(session, used)
        _audit(session, used)
        running = _audit(session, used, status="running")
    with session_scope(database_url) as session:
        seen = usage(session=session, project="acme", kind="dataset", ids=[used, idle])
        assert set(seen) == {used} and seen[used].audits == 3
        assert seen[used].last_used_at is not None
        other = usage(session=session, project="globex", kind="dataset", ids=[used])
        assert other == {}  # another project's audits never count
        with pytest.raises(InUse) as refused:
            erase(
                session=session,
                settings=settings,
                project="acme",
                kind="dataset",
                item_id=used,
                actor="ada",
            )
        assert refused.value.audits == [running]
        mine: dict[str, Any] = {
            "session": session,
            "settings": settings,
            "kind": "dataset",
            "item_id": idle,
        }
        assert erase(**mine, project="globex", actor="eve") is None  # not globex's
        row = erase(**mine, project="acme", actor="ada")
        assert row is not None and row.deleted_by == "ada"
    stored = settings.data_path / "acme" / "idle.csv"
    assert not stored.exists() and not stored.with_name("idle.csv.columnar.parquet").exists()
    assert (settings.data_path / "acme" / "used.csv").exists()
    with session_scope(database_url) as session:
        assert repo.get_dataset(session=session, project="acme", dataset_id=idle) is None
        gone = find_deleted(session=session, project="acme", kind="dataset", item_id=idle)
        assert gone is not None and gone.sha256 == "i" * 64 and gone.deleted_at is not None
        live, total = list_items(session=session, project="acme", kind="dataset")
        assert [r.id for r in live] == [used] and total == 1
        erased, _ = list_items(session=session, project="acme", kind="dataset", deleted=True)
        assert [r.id for r in erased] == [idle]
        assert verify_log(session=session).intact
