"""Fixtures for audit tests: an isolated artifact dir (SQLite) and small datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import spec_for, write_pool

__all__ = ["spec_for"]  # imported from here by the engine tests


@pytest.fixture(autouse=True)
def embedded_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own artifact dir, so the embedded SQLite DB is private."""
    from audit.settings import get_settings

    home = tmp_path / "home"
    monkeypatch.setenv("BIASAUDIT_ARTIFACT_DIR", str(home))
    monkeypatch.delenv("BIASAUDIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("BIASAUDIT_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def hiring_csv(tmp_path: Path) -> Path:
    """A small seeded applicant pool with a planted disparity by sex (and a score)."""
    return write_pool(tmp_path / "applicants.csv", n=3000, seed=42, score=True)
