"""A dataset deleted while its columnar copy was being made keeps no copy.

The deletion removed the original and the copies it found; a conversion that was
already running writes its copy afterwards, so the task looks at the row again once
done and removes what it made (``workers/columnar.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from audit.engine import columnar
from audit.storage import session_scope
from audit.storage.models import Dataset, utcnow
from tests.workers.conftest import add_dataset
from workers import columnar as task


def test_a_copy_made_for_a_dataset_deleted_meanwhile_is_removed(
    service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data: Path = service_env["data"]
    dataset_id = add_dataset(data, n=300)
    original = data / "acme" / f"{dataset_id}.csv"
    convert = columnar.convert_csv

    def convert_then_deleted(*args: Any, **kwargs: Any) -> int:
        rows = convert(*args, **kwargs)
        with session_scope() as session:  # a DELETE committed while the copy was written
            deleted = {"deleted_at": utcnow(), "deleted_by": "ada"}
            session.execute(update(Dataset).where(Dataset.id == dataset_id).values(**deleted))
        return rows

    monkeypatch.setattr(columnar, "convert_csv", convert_then_deleted)
    assert task.convert_dataset("acme", dataset_id) == "gone"
    assert not columnar.copy_path(original).exists()
    assert not original.exists()
    assert task.convert_dataset("acme", dataset_id) == "gone"  # a redelivery does nothing
