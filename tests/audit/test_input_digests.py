"""Expected digests (audit.engine.integrity): an upload's digest travels to the engine,
which compares the digest it computes anyway; a mismatch names the id and both."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from audit.engine.integrity import check_model, dataset_digest
from audit.engine.run import compute_results
from audit.errors import AuditInputError
from tests.factories import spec_for, write_pool

OTHER = "f" * 64


def test_dataset_digest_names_the_id_and_both_digests(tmp_path: Path) -> None:
    path = write_pool(tmp_path / "pool.csv", n=50)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = SimpleNamespace(id="ds-1", sha256=OTHER)
    with pytest.raises(AuditInputError) as refused:
        dataset_digest(stored, path)
    assert refused.value.field == "dataset.id"
    assert "ds-1" in str(refused.value) and actual in str(refused.value)
    assert OTHER in str(refused.value)
    given = SimpleNamespace(id=None, sha256=OTHER)  # a digest written in the spec
    with pytest.raises(AuditInputError, match="the spec expects") as refused:
        dataset_digest(given, path)
    assert refused.value.field == "dataset.sha256"
    assert dataset_digest(SimpleNamespace(id="ds-1", sha256=actual), path) == actual
    assert dataset_digest(SimpleNamespace(id=None, sha256=None), path) == actual


def test_model_fingerprint_names_model_id() -> None:
    spec = SimpleNamespace(id="m-1", path="models/m-1.skops", sha256=OTHER)
    with pytest.raises(AuditInputError) as refused:
        check_model(spec, SimpleNamespace(sha256="a" * 64))
    assert refused.value.field == "model.id"
    assert "m-1" in str(refused.value) and "a" * 64 in str(refused.value)
    check_model(spec, SimpleNamespace(sha256=OTHER))  # the same: nothing raised
    check_model(spec, None)  # predictions: no model, nothing to check


@pytest.mark.parametrize("chunked", [False, True])
def test_engine_refuses_a_changed_upload_in_one_process_and_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    from audit.settings import get_settings

    if chunked:
        monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
    get_settings.cache_clear()
    path = write_pool(tmp_path / "pool.csv", n=300)
    spec = spec_for(path)
    spec["dataset"].update(id="ds-9", sha256=OTHER)
    try:
        with pytest.raises(AuditInputError, match="dataset.id: the stored dataset ds-9") as e:
            compute_results(spec, base_dir=tmp_path)
    finally:
        get_settings.cache_clear()
    assert e.value.field == "dataset.id"


def test_a_model_run_by_path_is_named_by_its_upload_id() -> None:
    from audit.engine.integrity import for_upload

    spec = SimpleNamespace(id=None, path="models/m-2.skops", sha256=OTHER)
    with pytest.raises(AuditInputError) as refused:
        check_model(spec, SimpleNamespace(sha256="b" * 64))
    assert refused.value.field == "model.sha256"  # the engine saw a path only
    named = for_upload(refused.value, {"model": {"kind": "sklearn", "id": "m-2"}})
    assert isinstance(named, AuditInputError) and named.field == "model.id"
    assert str(named).startswith("model.id: the stored model m-2 has sha256 " + "b" * 64)
    assert OTHER in str(named)
    assert for_upload(refused.value, {"model": {"path": "x.skops"}}) is refused.value
    other = AuditInputError("dataset.label: ...", field="dataset.label")
    assert for_upload(other, {"model": {"id": "m-2"}}) is other
