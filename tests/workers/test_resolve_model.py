"""The worker turns ``model.id`` into the stored model's path, in the audit's project only."""

from __future__ import annotations

from typing import Any

import pytest

from audit.errors import AuditInputError
from audit.storage import repo, session_scope
from workers.runner import resolve_dataset


def _model(data: Any, project: str, *, folder: bool) -> str:
    models = data / project / "models"
    models.mkdir(parents=True, exist_ok=True)
    with session_scope() as session:
        row = repo.create_model(
            session=session, project=project, kind="huggingface", sha256="0" * 64, path="x"
        )
        path = models / (row.id if folder else f"{row.id}.skops")
        if folder:
            path.mkdir()
            (path / "config.json").write_text("{}")
        else:
            path.write_bytes(b"PK")
        row.path = str(path)
        return row.id


def test_model_id_becomes_the_project_relative_path(service_env: dict[str, Any]) -> None:
    data = service_env["data"]
    for folder in (True, False):
        model_id = _model(data, "acme", folder=folder)
        spec: dict[str, Any] = {"name": "x", "model": {"kind": "huggingface", "id": model_id}}
        resolved, root, _ = resolve_dataset(spec, project="acme")
        expected = f"models/{model_id}" if folder else f"models/{model_id}.skops"
        # the upload's fingerprint travels as the expected one (the engine checks it)
        assert resolved["model"] == {"kind": "huggingface", "path": expected, "sha256": "0" * 64}
        assert (root / resolved["model"]["path"]).exists()
        assert spec["model"]["id"] == model_id  # the stored spec is not changed


def test_another_projects_model_is_an_input_error(service_env: dict[str, Any]) -> None:
    model_id = _model(service_env["data"], "globex", folder=False)
    spec = {"name": "x", "model": {"kind": "sklearn", "id": model_id}}
    with pytest.raises(AuditInputError, match="no model .* in project 'acme'") as info:
        resolve_dataset(spec, project="acme")
    assert info.value.field == "model.id"
