"""Fixtures for audit tests: an isolated artifact dir (SQLite) and small datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


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
    """A small seeded applicant pool with a planted disparity by sex."""
    rng = np.random.default_rng(42)
    n = 3000
    sex = rng.choice(["female", "male"], size=n)
    race = rng.choice(
        np.array(["Black", "White", "Asian", None], dtype=object), size=n, p=[0.3, 0.5, 0.15, 0.05]
    )
    rate = np.where(sex == "female", 0.25, 0.45)
    frame = pd.DataFrame(
        {
            "sex": sex,
            "race": race,
            "qualified": rng.integers(0, 2, size=n),
            "advanced": (rng.random(n) < rate).astype(int),
            "score": rng.random(n),
        }
    )
    path = tmp_path / "applicants.csv"
    frame.to_csv(path, index=False)
    return path


def spec_for(path: Path, **overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "test-hiring",
        "domain": "hiring",
        "dataset": {
            "path": str(path),
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race"],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
    }
    spec.update(overrides)
    return spec
