"""Test data shared by every test package: the hiring pool and a spec for it.

One copy of each, so that the API, engine, worker and integration tests audit
the same table with the same spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_pool(path: Path, n: int = 1200, seed: int = 3, *, score: bool = False) -> Path:
    """A seeded applicant pool with a planted disparity by sex (female rate 0.25, male 0.45).

    Columns: ``sex``, ``race`` (5% missing), ``qualified`` (label), ``advanced``
    (prediction), and with ``score=True`` a uniform ``score``.
    """
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n)
    race = rng.choice(
        np.array(["Black", "White", "Asian", None], dtype=object), size=n, p=[0.3, 0.5, 0.15, 0.05]
    )
    columns: dict[str, Any] = {
        "sex": sex,
        "race": race,
        "qualified": rng.integers(0, 2, size=n),
        "advanced": (rng.random(n) < np.where(sex == "female", 0.25, 0.45)).astype(int),
    }
    if score:
        columns["score"] = rng.random(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def spec_for(dataset: str | Path, **overrides: Any) -> dict[str, Any]:
    """A hiring spec over the pool: ``dataset.path`` for a ``Path``, ``dataset.id`` for a str.

    Top-level keys in ``overrides`` replace the spec's (``name``, ``probes``, ...).
    """
    source = {"path": str(dataset)} if isinstance(dataset, Path) else {"id": dataset}
    spec: dict[str, Any] = {
        "name": "test-hiring",
        "domain": "hiring",
        "dataset": {
            **source,
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race"],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
    }
    spec.update(overrides)
    return spec
