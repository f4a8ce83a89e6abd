"""Tiny seeded inputs the built-in probes' own examples share (:class:`probes.base.ProbeExample`).

Not a probe: it registers nothing. Each probe's example (in its ``*_models.py``)
builds its :class:`~probes.base.ProbeInput` from these and states what its result
must show; ``tests/probes/test_probe_examples.py`` runs every registered probe's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from probes.base import ProbeInput

#: a sentence with pronouns to swap (counterfactual-text, pairwise-choice examples)
PRONOUN_TEXT = "He said his plan was good and she agreed with him"


def applicants(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """``x1``, ``x2`` (features), ``sex`` (f/m), ``race`` (a/b/c) and ``m`` (1.0 for m)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "sex": pd.Categorical(rng.choice(["f", "m"], size=n), categories=["f", "m"]),
            "race": pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
        }
    )
    frame["m"] = (frame["sex"].astype(str) == "m").astype(float)
    return frame


def decisions(n: int = 300, seed: int = 0) -> ProbeInput:
    """Applicants with labels and decisions: m selected at 0.6, f at 0.4 (labels even)."""
    frame = applicants(n, seed)
    rng = np.random.default_rng(seed + 1)
    y_true = rng.random(n) < 0.5
    y_pred = rng.random(n) < np.where(frame["m"] == 1.0, 0.6, 0.4)
    return ProbeInput(frame=frame, protected=("sex", "race"), y_true=y_true, y_pred=y_pred, seed=3)


def texts(rows: int = 12) -> ProbeInput:
    """A ``cv`` column of sentences with pronouns (no protected columns)."""
    frame = pd.DataFrame({"cv": [f"{PRONOUN_TEXT} ({i})." for i in range(rows)]})
    return ProbeInput(frame=frame, protected=(), seed=3)


def no_dataset() -> ProbeInput:
    """The input of probes that bring their own data (pair sets, association tests)."""
    return ProbeInput(frame=pd.DataFrame({"g": ["a"]}), protected=("g",), seed=5)


def holdout_with_training_file(n: int = 300) -> ProbeInput:
    """Applicants with a label ``y``; ``train.csv`` (same columns) in ``base_dir``."""
    frame = applicants(n)
    y_true = (frame["x1"] + 0.5 * np.random.default_rng(2).normal(size=n)) > 0
    folder = Path(tempfile.mkdtemp(prefix="biasaudit-example-"))
    frame.assign(y=y_true.astype(int)).to_csv(folder / "train.csv", index=False)
    return ProbeInput(
        frame=frame, protected=("sex",), y_true=y_true, label="y", seed=3, base_dir=folder
    )
