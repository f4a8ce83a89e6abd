"""Retention (``biasaudit.apply_retention``) and the cleanup of deleted items' copies.

Retention deletes, through the path of ``DELETE``, only datasets uploaded before the
period that no audit submitted within it names and no enabled schedule needs; a worker
never uses, and removes, its cached copy of an item deleted anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from audit.errors import AuditInputError
from audit.settings import Settings
from audit.storage import db
from audit.storage.erasure import sweep_deleted_copies
from audit.storage.events import list_events, verify_log
from audit.storage.models import Audit, Dataset, utcnow
from audit.storage.retention import apply_retention
from tests.audit.api.helpers import auth, make_csv, spec_for, upload
from workers.app import celery_config

DAYS = 30


def _age(settings: Settings, table: Any, item_id: str, days: int) -> None:
    with db.session_scope(settings.db_url) as session:
        then = utcnow() - timedelta(days=days)
        session.execute(update(table).where(table.id == item_id).values(created_at=then))


def _with_retention(settings: Settings) -> Settings:
    return settings.model_copy(update={"dataset_retention_days": DAYS})


def test_retention_deletes_only_what_nothing_used_within_the_period(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    token, admin = make_token("submitter"), make_token("admin")
    ids = {
        name: upload(client, token, make_csv(20 + i)).json()["id"]
        for i, name in enumerate(("unused", "used_now", "new", "scheduled", "used_long_ago"))
    }
    for name in ("unused", "used_now", "scheduled", "used_long_ago"):
        _age(api_settings, Dataset, ids[name], DAYS + 5)
    recent = client.post("/v1/audits", json=spec_for(ids["used_now"]), headers=auth(token))
    old = client.post("/v1/audits", json=spec_for(ids["used_long_ago"]), headers=auth(token))
    _age(api_settings, Audit, old.json()["id"], DAYS + 1)
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(ids["scheduled"])}
    assert client.post("/v1/schedules", json=body, headers=auth(admin)).status_code == 201
    with db.session_scope(api_settings.db_url) as session:  # both audits done
        session.execute(update(Audit).values(status="succeeded"))
    assert recent.status_code == 202

    assert apply_retention(settings=api_settings) == []  # off by default
    deleted = apply_retention(settings=_with_retention(api_settings))
    assert sorted(deleted) == sorted(f"dataset/{ids[n]}" for n in ("unused", "used_long_ago"))
    folder = api_settings.data_path / "acme"
    for name, item_id in ids.items():
        assert (folder / f"{item_id}.csv").exists() == (name not in ("unused", "used_long_ago"))
    gone = client.get(f"/v1/datasets/{ids['unused']}", headers=auth(token)).json()
    assert gone["deleted_by"] == "retention"
    assert apply_retention(settings=_with_retention(api_settings)) == []  # nothing more

    with db.session_scope(api_settings.db_url) as session:
        rows, _ = list_events(session=session, project="acme", limit=100)
        logged = [
            (e.actor, (e.detail or {})["reason"]) for e in rows if e.action == "dataset.deleted"
        ]
        assert logged == [("retention", f"retention: unused for {DAYS} days")] * 2
        assert verify_log(session=session).intact


def test_retention_keeps_what_a_queued_audit_needs_and_runs_on_the_beat(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    token = make_token("submitter")
    _age(api_settings, Dataset, dataset_id, DAYS + 5)
    queued = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(token))
    _age(api_settings, Audit, queued.json()["id"], DAYS + 1)  # old, but still queued
    assert apply_retention(settings=_with_retention(api_settings)) == []
    assert client.get(f"/v1/datasets/{dataset_id}", headers=auth(token)).status_code == 200

    beat = celery_config(_with_retention(api_settings))["beat_schedule"]
    assert beat["apply-retention"]["task"] == "biasaudit.apply_retention"
    assert beat["apply-retention"]["schedule"] == api_settings.retention_interval
    assert "apply-retention" not in celery_config(api_settings)["beat_schedule"]


def _remote_dataset(settings: Settings, *, deleted: bool) -> tuple[str, Path]:
    """A dataset row stored in an object store, and this machine's cached copy of it."""
    from audit.storage.cache import pin, release_all
    from audit.storage.repo import create_dataset

    with db.session_scope(settings.db_url) as session:
        row = create_dataset(
            session=session,
            project="acme",
            sha256="0" * 64,
            path="s3://bucket/tenants/acme/placeholder.csv",
            rows=1,
            columns=["a"],
            size_bytes=2,
        )
        row.path = f"s3://bucket/tenants/acme/{row.id}.csv"
        if deleted:
            row.deleted_at, row.deleted_by = utcnow(), "someone"
        item_id = row.id
    copy = settings.data_path / "acme" / f"{item_id}.csv"
    pin(copy)  # as local_copy does: the lock file marks a cached copy
    release_all()
    copy.write_bytes(b"a\n1\n")
    copy.with_name(copy.name + ".columnar.parquet").write_bytes(b"PAR1")
    return item_id, copy


def test_cached_copies_of_deleted_items_are_removed_and_never_used(
    api_settings: Settings,
) -> None:
    from workers.inputs import resolve_dataset

    gone_id, gone = _remote_dataset(api_settings, deleted=True)
    live_id, live = _remote_dataset(api_settings, deleted=False)
    with pytest.raises(AuditInputError) as refused:
        resolve_dataset(spec_for(gone_id), project="acme")
    assert refused.value.field == "dataset.id"
    assert f"dataset {gone_id} was deleted" in str(refused.value)
    assert not gone.exists() and not gone.with_name(gone.name + ".columnar.parquet").exists()
    assert not list(gone.parent.glob(f".{gone.name}*"))  # the lock file too

    _, again = _remote_dataset(api_settings, deleted=True)  # e.g. deleted on another machine
    with db.session_scope(api_settings.db_url) as session:
        removed = sweep_deleted_copies(session=session, settings=api_settings)
    assert removed == [again]
    assert not again.exists() and live.exists()
    assert live_id != gone_id
