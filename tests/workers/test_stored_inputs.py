"""How a worker reads a dataset in the object store (moto's server on loopback): by
range for the planner and the shards (nothing copied), as a whole verified copy for an
audit run in one process, and a CSV cut inside a quoted field fails by name."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from audit.engine.reader import Shard
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.objects import get_store
from audit.storage.ranged import StoredFile
from tests.factories import spec_for, write_pool
from tests.s3_server import s3_endpoint, s3_env  # noqa: F401
from workers import runner
from workers.inputs import ranged_source, resolve_dataset
from workers.shards import _count


@pytest.fixture
def stored_env(
    service_env: dict[str, Any],
    s3_env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    for key, value in {**s3_env, "BIASAUDIT_SHARD_THRESHOLD_ROWS": "1000"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BIASAUDIT_SHARD_ROWS", "2000")
    get_settings.cache_clear()
    return service_env


def _register(body: bytes, name: str, *, etag: bool = True, rows: int = 0) -> str:
    store = get_store()
    with session_scope() as session:
        ds = repo.create_dataset(
            session=session,
            project="acme",
            sha256=hashlib.sha256(body).hexdigest(),
            path="x",
            rows=rows,
            columns=[],
            size_bytes=len(body),
        )
        key = f"acme/{ds.id}{name}"
        ds.path = store.put_bytes(key, body, "text/csv")
        ds.etag = store.head(key).etag if etag else None
        return str(ds.id)


def test_shards_read_by_range_one_process_gets_a_copy(
    stored_env: dict[str, Any], tmp_path: Path
) -> None:
    body = write_pool(tmp_path / "p.csv", n=8000, seed=2).read_bytes()
    dataset_id = _register(body, ".csv", rows=8000)
    spec = spec_for(dataset_id)
    resolved, root, rows = resolve_dataset(spec, project="acme", ranged=True)
    assert resolved["dataset"]["path"] == f"{dataset_id}.csv" and rows == 8000
    assert not (root / f"{dataset_id}.csv").exists()  # nothing downloaded
    stored = ranged_source(spec, project="acme")
    assert isinstance(stored, StoredFile) and stored.size == len(body)
    shards, not_split = runner._plan(resolved, root, rows, stored)
    assert len(shards) == 4 and not_split is None
    # the same audit in one process (here: not count-only) reads a whole, verified copy
    resolved, root, _ = resolve_dataset(spec, project="acme")
    assert (root / resolved["dataset"]["path"]).read_bytes() == body
    # a dataset registered without an ETag is never read by range
    old = _register(body, ".csv", etag=False)
    assert ranged_source(spec_for(old), project="acme") is None
    resolved, root, _ = resolve_dataset(spec_for(old), project="acme", ranged=True)
    assert (root / resolved["dataset"]["path"]).exists()


def test_a_cut_inside_a_quoted_field_fails_the_shard_by_name(stored_env: dict[str, Any]) -> None:
    header = "sex,race,qualified,advanced,note\n"
    rows = "".join(
        f'{"female" if i % 3 else "male"},White,1,{i % 2},"first line\nsecond {i}"\n'
        for i in range(6000)
    )
    body = (header + rows).encode()
    dataset_id = _register(body, ".csv", rows=6000)
    spec = spec_for(dataset_id)
    resolved, root, rows_ = resolve_dataset(spec, project="acme", ranged=True)
    parsed, _ = parse_spec(resolved)
    stored = ranged_source(spec, project="acme")
    assert stored is not None
    shards, _ = runner._plan(resolved, root, rows_, stored)
    errors = []
    for shard in shards:  # each on its own machine: a fresh reader
        one = ranged_source(spec, project="acme")
        try:
            _count(parsed, one, Shard(*shard.__dict__.values()), None)
        except Exception as exc:  # noqa: BLE001 - every failure must be an input error
            errors.append(exc)
    assert errors, "cuts fell inside quoted fields, yet no shard noticed"
    assert all(isinstance(e, AuditInputError) and e.field == "dataset.id" for e in errors)
    assert any("has a line break inside a quoted field near byte" in str(e) for e in errors)
    assert all("convert the file to Parquet" in str(e) for e in errors), errors


def test_an_object_replaced_after_registration_fails_the_plan_by_name(
    stored_env: dict[str, Any], tmp_path: Path
) -> None:
    body = write_pool(tmp_path / "p.csv", n=8000, seed=4).read_bytes()
    dataset_id = _register(body, ".csv", rows=8000)
    get_store().put_bytes(f"acme/{dataset_id}.csv", body.replace(b"male", b"MALE"), "text/csv")
    spec = spec_for(dataset_id)
    resolved, root, rows = resolve_dataset(spec, project="acme", ranged=True)
    with pytest.raises(AuditInputError, match="was replaced in the object store") as info:
        runner._plan(resolved, root, rows, ranged_source(spec, project="acme"))
    assert info.value.field == "dataset.id" and f"acme/{dataset_id}.csv" in str(info.value)
    # the whole copy an in-process run would make is refused by its SHA-256 alike
    with pytest.raises(AuditInputError, match="no longer has the SHA-256"):
        resolve_dataset(spec, project="acme")
