"""Absurd inputs are refused up front by name, in every path (in memory, chunked, sharded).

- a protected column with more than ``policy.max_levels`` levels (an id column by
  mistake), even when every chunk or shard alone stays under the limit;
- an attribute or intersection with more than ``policy.max_groups`` observed groups;
- non-finite scores (``inf``, ``-inf``, ``1e400`` that parses to inf);

each an input error naming the column (CLI exit 2), with the count and the limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from audit.cli import main
from audit.engine import data as data_mod
from audit.engine import sharding
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from audit.settings import get_settings


def count_chunks(parsed: Any, path: Path, shard: Any, **kw: Any) -> dict[str, Any]:
    """One shard's counts, as a worker counts them."""
    kw.setdefault("chunk_rows", 200_000)
    return data_mod.count_chunks(
        parsed.dataset, path, shard=shard, max_levels=parsed.policy.max_levels, **kw
    )


def _pool(path: Path, n: int = 600, *, ids: int = 3, score: list[str] | None = None) -> Path:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["female", "male"], size=n),
            "team": [f"t{i % ids:03d}" for i in range(n)],  # ids sorted by row: chunks see few
            "qualified": rng.integers(0, 2, size=n),
            "advanced": rng.integers(0, 2, size=n),
        }
    )
    if score is not None:
        frame["score"] = (score * n)[:n]
    frame.to_csv(path, index=False)
    return path


def _spec(path: Path, **policy: Any) -> dict[str, Any]:
    return {
        "name": "limits",
        "domain": "hiring",
        "dataset": {
            "path": str(path),
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "team"],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
        "policy": policy,
    }


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "100")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _sharded(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    parsed, _ = parse_spec(spec)
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=100, max_shards=64)
    parts = [count_chunks(parsed, path, s, chunk_rows=50) for s in shards]
    parts = json.loads(json.dumps(parts))
    return sharding.results_from_parts(spec, parts, audit_id="x", path=path)


LEVELS = "column 'team' has 40 distinct values, more than policy.max_levels=30"
LEVELS_SO_FAR = r"column 'team' has at least 3\d distinct values, more than policy.max_levels=30"


def test_too_many_levels_in_memory_names_the_column(tmp_path: Path) -> None:
    path = _pool(tmp_path / "d.csv", ids=40)
    with pytest.raises(AuditInputError, match=LEVELS) as err:
        compute_results(_spec(path, max_levels=30))
    assert err.value.field == "dataset.protected[1]"
    assert compute_results(_spec(path, max_levels=40))["verdict"] in ("pass", "fail")


def test_too_many_levels_over_chunks_even_when_each_chunk_is_under(
    tmp_path: Path, chunked: None
) -> None:
    path = _pool(tmp_path / "d.csv", n=1200, ids=40)  # a chunk of 100 rows: 34 levels at most
    frame = pd.read_csv(path)
    frame["team"] = sorted(frame["team"])  # each chunk of 100 rows sees 4 teams
    frame.to_csv(path, index=False)
    with pytest.raises(AuditInputError, match=LEVELS_SO_FAR):
        compute_results(_spec(path, max_levels=30))
    doc = compute_results(_spec(path, max_levels=40))
    assert doc["dataset"]["chunked"] is True


def test_too_many_levels_over_shards(tmp_path: Path) -> None:
    path = _pool(tmp_path / "d.csv", n=1200, ids=40)
    frame = pd.read_csv(path)
    frame["team"] = sorted(frame["team"])
    frame.to_csv(path, index=False)
    with pytest.raises(AuditInputError, match=LEVELS):
        _sharded(_spec(path, max_levels=30), path)
    assert _sharded(_spec(path, max_levels=40), path)["dataset"]["rows"] == 1200


GROUPS = r"'sex&team' has \d+ observed groups, more than policy.max_groups=50"


def test_too_many_groups_names_the_intersection(tmp_path: Path) -> None:
    path = _pool(tmp_path / "d.csv", ids=40)  # 40 teams x 2 sexes: up to 80 groups
    with pytest.raises(AuditInputError, match=GROUPS):
        compute_results(_spec(path, max_groups=50))
    spec = _spec(path, max_groups=50)
    spec["probes"] = [{"kind": "demographic"}]  # single attributes: 40 groups at most
    assert [p["attribute"] for p in compute_results(spec)["probes"]] == ["sex", "team"]


def test_too_many_groups_chunked_and_sharded(tmp_path: Path, chunked: None) -> None:
    path = _pool(tmp_path / "d.csv", n=1200, ids=40)
    with pytest.raises(AuditInputError, match=GROUPS):
        compute_results(_spec(path, max_groups=50))
    with pytest.raises(AuditInputError, match=GROUPS):
        _sharded(_spec(path, max_groups=50), path)


def test_five_columns_of_fifty_levels_intersectional_are_refused_fast(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"p{i}": rng.integers(0, 50, size=n) for i in range(5)})
    frame["qualified"] = rng.integers(0, 2, size=n)
    frame["advanced"] = rng.integers(0, 2, size=n)
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    spec = _spec(path)
    spec["dataset"]["protected"] = [f"p{i}" for i in range(5)]
    start = time.perf_counter()
    with pytest.raises(
        AuditInputError,
        match=r"have (at least )?\d+ observed groups in all \(\d+ of 31 attribute sets counted; ",
    ):
        compute_results(spec)
    assert time.perf_counter() - start < 5.0
    spec["probes"] = [{"kind": "demographic"}]  # the five attributes alone: 250 groups
    assert len(compute_results(spec)["probes"]) == 5


def test_cli_exits_2_naming_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _pool(tmp_path / "d.csv", ids=40)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_spec(path, max_levels=30)))
    assert main(["run", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert LEVELS in capsys.readouterr().err
    spec.write_text(yaml.safe_dump(_spec(path, max_groups=50)))
    assert main(["run", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "'sex&team' has" in capsys.readouterr().err


def test_an_id_column_of_200k_levels_is_refused_fast(tmp_path: Path) -> None:
    n = 200_000
    path = tmp_path / "ids.csv"
    pd.DataFrame(
        {"sex": ["female", "male"] * (n // 2), "team": np.arange(n), "advanced": 1, "qualified": 1}
    ).to_csv(path, index=False)
    start = time.perf_counter()
    with pytest.raises(AuditInputError, match="column 'team' has 200000 distinct values"):
        compute_results(_spec(path))
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e400", "Infinity"])
def test_non_finite_scores_are_refused_naming_the_column(
    tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _pool(tmp_path / "d.csv", score=["0.25", "0.75", bad, "0.5"])
    spec = _spec(path)
    spec["dataset"]["score"] = "score"
    message = r"column 'score' has 150 non-finite value\(s\) .*first at row 2"
    with pytest.raises(AuditInputError, match=message) as err:
        compute_results(spec)
    assert err.value.field == "dataset.score"
    # a spec with a score is never counted in chunks or shards (AUC needs every score):
    # a file over the chunk size still reads its scores, and is refused the same way
    assert not sharding.shardable(parse_spec(spec)[0])
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
    get_settings.cache_clear()
    try:
        with pytest.raises(AuditInputError, match=message):
            compute_results(spec)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_declared_but_unused_categories_do_not_count() -> None:
    from audit.engine.data import group_category

    categories = [f"c{i:04d}" for i in range(1500)]
    used = pd.Series(pd.Categorical(["c0001", "c0002", None], categories=categories), name="col")
    cat, missing = group_category(used, "unknown", max_levels=3)  # 1,500 declared, 3 present
    assert list(cat.astype(str)) == ["c0001", "c0002", "unknown"] and missing == 1
    with pytest.raises(AuditInputError, match="column 'col' has 3 distinct values"):
        group_category(used, "unknown", max_levels=2)
    many = pd.Series(pd.Categorical(categories[:1001], categories=categories), name="col")
    with pytest.raises(AuditInputError, match="has 1001 distinct values, more than"):
        group_category(many, "unknown", max_levels=1000)


STRATA_LEVELS = (
    r"^dataset\.strata: column 'team' has (at least )?\d+ distinct values, "
    r"more than policy\.max_levels=30"
)


def _strata_spec(path: Path, **policy: Any) -> dict[str, Any]:
    spec = _spec(path, **policy)
    spec["dataset"]["protected"] = ["sex"]
    spec["dataset"]["strata"] = "team"
    return spec


@pytest.mark.parametrize("how", ["in-process", "chunked", "sharded"])
def test_too_many_strata_levels_name_dataset_strata_in_every_path(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _pool(tmp_path / "d.csv", n=1200, ids=40)
    frame = pd.read_csv(path)
    frame["team"] = sorted(frame["team"])  # each chunk or shard of 100 rows sees 4 teams
    frame.to_csv(path, index=False)
    if how == "chunked":
        monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
        monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "100")
    get_settings.cache_clear()
    try:
        run = (lambda s: _sharded(s, path)) if how == "sharded" else compute_results
        with pytest.raises(AuditInputError, match=STRATA_LEVELS) as err:
            run(_strata_spec(path, max_levels=30))
        assert err.value.field == "dataset.strata"
        assert run(_strata_spec(path, max_levels=40))["dataset"]["rows"] == 1200
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
