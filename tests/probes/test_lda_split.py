"""lda-search's ``holdout_size``: the audited rows split into training and holdout rows.

The split is seeded (one seed, one split), disjoint and exhaustive, stratified by
the label and every protected column (each stratum keeps its share on both sides),
and the search judges the model in use on the holdout rows only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from probes.lda.config import LdaSearchConfig
from probes.lda.rows import split_rows


def _strata(n: int = 3001, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label": rng.random(n) < 0.3,
            "sex": rng.choice(["female", "male"], n, p=[0.35, 0.65]),
            "race": rng.choice(["a", "b", "c", "d"], n, p=[0.6, 0.25, 0.1, 0.05]),
        }
    )


def test_one_seed_gives_one_split_and_another_seed_another() -> None:
    strata = _strata()
    first = split_rows(strata, holdout_size=0.3, seed=11)
    again = split_rows(strata.copy(), holdout_size=0.3, seed=11)
    other = split_rows(strata, holdout_size=0.3, seed=12)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_split_is_disjoint_exhaustive_and_stratified() -> None:
    strata = _strata()
    hold = split_rows(strata, holdout_size=0.3, seed=5)
    train_rows, hold_rows = set(np.flatnonzero(~hold)), set(np.flatnonzero(hold))
    assert not train_rows & hold_rows
    assert train_rows | hold_rows == set(range(len(strata)))
    assert hold.sum() == pytest.approx(0.3 * len(strata), abs=len(strata) * 0.01)
    # every stratum (label x sex x race) keeps its share within rounding (one row)
    for _, idx in strata.groupby(["label", "sex", "race"]).groups.items():
        taken = int(hold[np.asarray(idx)].sum())
        assert abs(taken - 0.3 * len(idx)) <= 0.5 + 1e-9, (len(idx), taken)


def test_train_or_holdout_size_exactly_one() -> None:
    assert LdaSearchConfig(attribute="sex", holdout_size=0.4).train is None
    assert LdaSearchConfig(attribute="sex", train="t.csv").holdout_size is None
    assert LdaSearchConfig(attribute="sex", train_id="d1").train is None  # service: an upload
    bad: list[dict[str, Any]] = [
        {},
        {"train": "t.csv", "holdout_size": 0.3},
        {"train": "t.csv", "train_id": "d1"},
        {"train_id": "d1", "holdout_size": 0.3},
    ]
    for extra in bad:
        with pytest.raises(ValidationError, match="holdout_size"):
            LdaSearchConfig.model_validate({"attribute": "sex", **extra})
    with pytest.raises(ValidationError, match="holdout_size"):
        LdaSearchConfig(attribute="sex", holdout_size=1.0)


def test_train_id_outside_the_service_is_named(tmp_path: Path) -> None:
    """Only the service resolves an uploaded file's id; run_audit says what to give."""
    import yaml

    from audit import run_audit
    from audit.errors import AuditInputError
    from tests.probes.lda_data import german_case

    spec = german_case(tmp_path, planted=False)
    probe = spec["probes"][0]
    probe["train_id"] = probe.pop("train")
    (tmp_path / "id.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(AuditInputError, match=r"probes\[\]\.train_id: an uploaded dataset's id"):
        run_audit(tmp_path / "id.yaml", store=False)


@pytest.mark.slow
def test_a_split_search_is_judged_on_the_holdout_rows_only(tmp_path: Path) -> None:
    """One audited file, no train file: the model in use is judged on the held-out rows
    (AUC against scikit-learn's on exactly those rows) and one seed gives one result."""
    import skops.io as sio
    import yaml

    from audit import run_audit
    from tests.probes.lda_data import german_case

    spec = german_case(tmp_path, planted=True)
    frame = pd.read_csv(tmp_path / "holdout.csv")  # the audited rows
    probe = spec["probes"][0]
    del probe["train"]
    probe.update(holdout_size=0.5, reductions=False, hyperparameters=False, seeds=0, bootstrap=50)
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(spec))
    first = run_audit(tmp_path / "split.yaml", store=False)
    entry = next(p for p in first["probes"] if p["kind"] == "lda-search")
    summary = entry["summary"]
    assert summary["training"] == "split"
    assert summary["training_rows"] + summary["holdout_rows"] == len(frame)
    label = (frame["credit_risk"] == 1).to_numpy()
    strata = pd.DataFrame({"__label": label, "sex": frame["sex"], "age_group": frame["age_group"]})
    hold = split_rows(strata, holdout_size=0.5, seed=spec["seed"])
    assert summary["holdout_rows"] == int(hold.sum())
    path = tmp_path / "model.skops"
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    score = model.predict_proba(frame.loc[hold])[:, 1]
    assert entry["baseline"]["performance"] == pytest.approx(
        roc_auc_score(label[hold], score), abs=1e-12
    )
    again = run_audit(tmp_path / "split.yaml", store=False)
    again_entry = next(p for p in again["probes"] if p["kind"] == "lda-search")
    assert again_entry["alternatives"] == entry["alternatives"]
    assert again_entry["best"] == entry["best"]
