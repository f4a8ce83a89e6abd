"""Counts pushed down to the source database equal the counts of the pulled rows.

A real PostgreSQL database of decisions (created here through the admin
connection) is audited twice through the worker: once counted by one
``GROUP BY`` in the database (the default for count-only audits) and once with
``BIASAUDIT_SOURCE_PUSHDOWN=0``, which copies the rows and counts them in the
worker. Every value of the two results.json documents is equal; only ids, times
and what was read (a count table instead of a copy of the rows) differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from audit.settings import get_settings
from audit.storage import repo, session_scope
from tests.workers.conftest import add_audit, audit_row, source_database
from workers import runner

pytestmark = pytest.mark.postgres

ROWS = 6000


@pytest.fixture
def source(service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL database with a ``decisions`` table of ROWS planted rows."""
    rng = np.random.default_rng(11)
    sex = rng.choice(
        np.array(["female", "male", None], dtype=object), size=ROWS, p=[0.48, 0.48, 0.04]
    )
    race = rng.choice(["Black", "White", "Asian", "Hispanic"], size=ROWS)
    age = rng.integers(18, 80, size=ROWS)
    rate = np.where(sex == "female", 0.22, 0.36) + np.where(age >= 40, -0.05, 0.0)
    rows = [
        (s, r, int(a), "yes" if q else "no", "yes" if d else "no", float(w), float(g))
        for s, r, a, q, d, w, g in zip(
            sex,
            race,
            age,
            rng.integers(0, 2, size=ROWS),
            rng.random(ROWS) < rate,
            rng.choice([0.5, 1.0, 1.25, 2.0, 3.5], size=ROWS),  # sums exact in binary
            rng.random(ROWS),
            strict=True,
        )
    ]
    with source_database(monkeypatch, "loans") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "create table decisions (sex text, race text, age int, qualified text, "
                "advanced text, weight double precision, score double precision)"
            )
            with conn.cursor() as cur:
                cur.executemany("insert into decisions values (%s, %s, %s, %s, %s, %s, %s)", rows)
        yield url


def _spec(**dataset: Any) -> dict[str, Any]:
    base = {
        "source": "loans",
        "query": "select * from decisions",
        "label": "qualified",
        "prediction": "advanced",
        "favorable_label": "yes",
        "protected": ["sex", "race", "age"],
        "bins": {"age": [40]},
    }
    return {
        "name": "pushdown",
        "domain": "lending",
        "dataset": {**base, **dataset},
        "probes": [{"kind": "demographic", "intersectional": True}],
    }


def _run(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *, pushdown: bool) -> Any:
    monkeypatch.setenv("BIASAUDIT_SOURCE_PUSHDOWN", "1" if pushdown else "0")
    get_settings.cache_clear()
    audit_id = add_audit(spec)
    runner.execute_audit(audit_id, worker="w1")
    row = audit_row(audit_id)
    with session_scope() as session:
        results = repo.get_results(session=session, project="acme", audit_id=audit_id)
    return row, results


def _comparable(results: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in results.items() if k not in ("audit", "manifest", "dataset")}
    out["rows"] = results["dataset"]["rows"]
    return out


@pytest.mark.parametrize(
    "dataset",
    [
        pytest.param({}, id="unweighted-bins-missing-sex"),
        pytest.param({"weight": "weight", "reference": {"race": "White"}}, id="weighted"),
        pytest.param({"protected": ["sex", "age"], "strata": "race"}, id="strata-cddpl"),
        pytest.param(
            {"favorable_label": ["yes", "maybe"], "query": "select * from decisions where age<70"},
            id="label-list-filtered",
        ),
    ],
)
def test_pushed_down_counts_equal_pulled_rows(
    source: str, monkeypatch: pytest.MonkeyPatch, dataset: dict[str, Any]
) -> None:
    spec = _spec(**dataset)
    pushed_row, pushed = _run(spec, monkeypatch, pushdown=True)
    pulled_row, pulled = _run(spec, monkeypatch, pushdown=False)
    assert pushed_row.status == pulled_row.status == "succeeded", pushed_row.error
    assert _comparable(pushed) == _comparable(pulled)  # every metric, CI, p-value, finding
    info = pushed["manifest"]["dataset_source"]
    assert info["pushdown"] is True and "pushdown" not in pulled["manifest"]["dataset_source"]
    assert info["rows"] == pulled["manifest"]["dataset_source"]["rows"] == pushed["dataset"]["rows"]
    assert info["groups"] < info["rows"] / 2  # a count table (ages by value), not the rows
    groups = {g["group"]: g for g in pushed["probes"][0]["groups"] if "group" in g}
    assert groups  # the documents compared above are not empty
    filtered = "where" in spec["dataset"]["query"]
    assert (pushed["dataset"]["rows"] < ROWS) if filtered else (pushed["dataset"]["rows"] == ROWS)


def test_row_level_errors_are_the_pulled_rows_messages(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("update decisions set qualified = null where ctid in "
                     "(select ctid from decisions limit 3)")  # fmt: skip
    pushed_row, _ = _run(_spec(), monkeypatch, pushdown=True)
    pulled_row, _ = _run(_spec(), monkeypatch, pushdown=False)
    assert pushed_row.status == pulled_row.status == "failed"
    assert "dataset.label" in pushed_row.error and "3 missing value(s)" in pushed_row.error
    assert pushed_row.error == pulled_row.error  # the row number, not a group's


def test_audits_that_need_rows_pull_them(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(score="score")  # AUC and calibration need every score
    row, results = _run(spec, monkeypatch, pushdown=True)
    assert row.status == "succeeded", row.error
    info = results["manifest"]["dataset_source"]
    assert "pushdown" not in info and info["rows"] == ROWS


def test_a_misspelt_column_is_named_as_for_pulled_rows(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, _ = _run(_spec(prediction="advancd"), monkeypatch, pushdown=True)
    assert row.status == "failed"
    assert "dataset.prediction" in row.error and "advanced" in row.error  # did you mean
