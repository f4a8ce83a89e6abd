"""The worker turns a probe's ``train_id`` into the uploaded file's path, in the audit's
project only: another project's upload, or a path passed as an id, is an input error
naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.errors import AuditInputError
from tests.workers.conftest import add_dataset
from workers.runner import resolve_dataset


def _spec(dataset_id: str, train_id: str) -> dict[str, Any]:
    probe = {"kind": "lda-search", "attribute": "sex", "train_id": train_id}
    return {"name": "x", "dataset": {"id": dataset_id, "label": "qualified",
            "protected": ["sex"]}, "probes": [probe]}  # fmt: skip


def test_train_id_becomes_the_uploaded_file_inside_the_project(
    service_env: dict[str, Any],
) -> None:
    data = service_env["data"]
    audited, train = add_dataset(data), add_dataset(data, seed=4)
    spec = _spec(audited, train)
    resolved, root, _ = resolve_dataset(spec, project="acme")
    probe = resolved["probes"][0]
    assert "train_id" not in probe
    path = Path(probe["train"])
    assert path.is_absolute() and path.exists()  # confined: probes open it as given
    assert path.resolve().parent == (data / "acme").resolve() and path.stem == train
    assert spec["probes"][0]["train_id"] == train  # the stored spec is not changed


def test_another_projects_upload_or_a_path_is_refused(service_env: dict[str, Any]) -> None:
    data = service_env["data"]
    (data / "globex").mkdir()
    audited, theirs = add_dataset(data), add_dataset(data, project="globex")
    for train_id in (theirs, f"../globex/{theirs}.csv", "x" * 99):
        with pytest.raises(AuditInputError, match=r"probes\[0\]\.train_id: no dataset") as info:
            resolve_dataset(_spec(audited, train_id), project="acme")
        assert info.value.field == "probes[0].train_id"
        assert "globex" not in str(info.value).replace(f"../globex/{theirs}.csv", "")
