"""German credit with and without a planted proxy, for the lda-search tests and benchmark.

``planted`` adds ``proxy`` (the applicant's sex plus noise: strongly correlated
with sex, weakly with repayment) and a biased history: in the training rows a
third of the women who repaid are recorded as defaults, so the model in use
learns to penalise the proxy. The holdout keeps the true outcomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from audit.examples.lending import CATEGORICAL, FEATURES, LABEL, NUMERIC
from audit.sources.public import load_german


def german_case(
    root: Path, *, planted: bool, seed: int = 0, extra_features: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Write train.csv, holdout.csv, model.skops and spec.yaml under ``root``; return the spec."""
    df = load_german()
    rng = np.random.default_rng(seed)
    numeric = list(NUMERIC)
    features = list(FEATURES)
    if planted:
        df["proxy"] = (df["sex"] == "female") * 1.0 + rng.normal(0, 0.3, len(df))
        numeric.append("proxy")
        features.append("proxy")
    train, hold = train_test_split(df, test_size=0.4, random_state=seed, stratify=df[LABEL])
    train = train.copy()
    if planted:
        flip = (train["sex"] == "female") & (train[LABEL] == 1) & (rng.random(len(train)) < 0.35)
        train.loc[flip, LABEL] = 0
    categorical = [*CATEGORICAL, *extra_features]
    features += list(extra_features)
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("num", StandardScaler(), numeric),
        ]
    )
    clf = LogisticRegression(max_iter=1000, random_state=0)
    model = Pipeline([("preprocess", pre), ("classifier", clf)]).fit(train[features], train[LABEL])
    root.mkdir(parents=True, exist_ok=True)
    train.to_csv(root / "train.csv", index=False)
    hold.to_csv(root / "holdout.csv", index=False)
    sio.dump(model, root / "model.skops")
    spec = {
        "name": "lda-german" + ("-proxy" if planted else ""),
        "domain": "lending",
        "seed": 7,
        "dataset": {"path": "holdout.csv", "label": LABEL, "protected": ["sex", "age_group"]},
        "model": {"kind": "sklearn", "path": "model.skops"},
        "probes": [{"kind": "lda-search", "attribute": "sex", "train": "train.csv", "n_jobs": 2}],
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    return spec


def holdout_frame(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "holdout.csv")
