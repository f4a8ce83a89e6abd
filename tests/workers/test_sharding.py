"""Sharded counting merges to exactly the engine's in-process results (ids and times aside)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.engine import data as data_mod
from audit.engine import sharding
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditCancelled, AuditInputError


def count_chunks(parsed: Any, path: Path, shard: Any, **kw: Any) -> dict[str, Any]:
    """One shard's counts, as a worker counts them."""
    kw.setdefault("chunk_rows", 200_000)
    return data_mod.count_chunks(
        parsed.dataset, path, shard=shard, max_levels=parsed.policy.max_levels, **kw
    )


def _frame(n: int = 2400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n)
    race = rng.choice(
        np.array(["Black", "White", "Asian", None], dtype=object), size=n, p=[0.3, 0.5, 0.15, 0.05]
    )
    age = rng.choice(["<25", "25-45", ">45"], size=n)
    rate = np.where(sex == "female", 0.25, 0.45)
    return pd.DataFrame(
        {
            "sex": sex,
            "race": race,
            "age": age,
            "qualified": rng.integers(0, 2, size=n),
            "advanced": (rng.random(n) < rate).astype(int),
        }
    )


def _spec(path: Path, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "sharded",
        "domain": "hiring",
        "dataset": {
            "path": path.name,
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race", "age"],
            "privileged": {"sex": "male"},
        },
        "probes": [
            {"kind": "demographic", "intersectional": True, "bootstrap": 200},
            {"kind": "demographic", "attributes": ["race"]},
        ],
    }
    spec.update(over)
    return spec


def _sharded(spec: dict[str, Any], path: Path, *, shard_rows: int) -> dict[str, Any]:
    parsed, _ = parse_spec(spec)
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=shard_rows, max_shards=64)
    assert len(shards) > 1
    parts = [count_chunks(parsed, path, s, chunk_rows=150) for s in shards]
    parts = json.loads(json.dumps(parts))  # what travels through the result backend
    return sharding.results_from_parts(spec, parts[::-1], audit_id="x", path=path)


def _without_ids_and_times(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for key in ("id", "started_at", "finished_at"):
        doc["audit"].pop(key)
    doc["dataset"].pop("shards", None)  # how many parts were merged
    return doc


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sharded_results_equal_unsharded(tmp_path: Path, fmt: str) -> None:
    frame = _frame()
    path = tmp_path / f"pool.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, row_group_size=300)
    spec = _spec(path)
    whole = compute_results(spec, audit_id="y", base_dir=tmp_path)
    merged = _sharded(spec, path, shard_rows=700)
    assert _without_ids_and_times(merged) == _without_ids_and_times(whole)
    assert merged["dataset"]["rows"] == len(frame)
    assert [p["attribute"] for p in merged["probes"]][:3] == ["sex", "race", "age"]


def test_unknown_group_order_matches_engine(tmp_path: Path) -> None:
    # The engine lists groups sorted with "unknown" last; GroupCounts addition must not
    # change that, whatever order shards see the levels in (and a custom unknown_label).
    frame = _frame(900)
    frame["race"] = np.where(frame["race"].isna(), np.array(None, dtype=object), "zulu")
    frame.loc[frame.index % 3 == 0, "race"] = "alpha"
    path = tmp_path / "pool.csv"
    frame.to_csv(path, index=False)
    spec = _spec(path)
    whole = compute_results(spec, audit_id="y", base_dir=tmp_path)
    merged = _sharded(spec, path, shard_rows=200)
    assert _without_ids_and_times(merged) == _without_ids_and_times(whole)
    race = next(p for p in merged["probes"] if p["attribute"] == "race")
    assert [g["group"] for g in race["groups"]] == ["alpha", "zulu", "unknown"]
    spec["dataset"]["unknown_label"] = "n/a"
    whole = compute_results(spec, audit_id="y", base_dir=tmp_path)
    merged = _sharded(spec, path, shard_rows=200)
    assert _without_ids_and_times(merged) == _without_ids_and_times(whole)
    race = next(p for p in merged["probes"] if p["attribute"] == "race")
    assert [g["group"] for g in race["groups"]] == ["alpha", "zulu", "n/a"]


def test_plan_shards_covers_every_row_once() -> None:
    for rows in (1, 9, 10, 1001, 99_999):
        shards = sharding.plan_shards(rows=rows, shard_rows=100, max_shards=7)
        assert shards[0].start == 0 and shards[-1].stop == rows
        assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
        assert len(shards) <= 7 and [s.index for s in shards] == list(range(len(shards)))
    assert sharding.plan_shards(rows=0, shard_rows=10, max_shards=4) == []


def test_parquet_shards_align_to_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    _frame(1000).to_parquet(path, row_group_size=128)
    shards = sharding.plan_parquet_shards(path, shard_rows=300, max_shards=64)
    assert [(s.start, s.stop) for s in shards] == [(0, 384), (384, 768), (768, 1000)]


def test_only_count_only_audits_are_shardable(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    _frame(50).to_csv(path, index=False)
    base = _spec(path)
    assert sharding.shardable(parse_spec(base)[0])
    with_score = {**base, "dataset": {**base["dataset"], "score": "qualified"}}
    with_strata = {**base, "dataset": {**base["dataset"], "strata": "age"}}
    assert sharding.shardable(parse_spec(with_strata)[0])  # strata are counted (CDDPL)
    other_probe = {**base, "probes": [{"kind": "demographic"}, {"kind": "dataset"}]}
    model = {**base, "model": {"kind": "sklearn", "path": "m.skops"}}
    for spec in (with_score, other_probe, model):
        assert not sharding.shardable(parse_spec(spec)[0])
    small = parse_spec(base)[0]
    assert not sharding.should_shard(
        small, path, rows=50, threshold_rows=100, threshold_bytes=1 << 30
    )
    assert sharding.should_shard(small, path, rows=101, threshold_rows=100, threshold_bytes=1 << 30)
    assert sharding.should_shard(small, path, rows=None, threshold_rows=100, threshold_bytes=10)


def test_shard_errors_name_the_row_in_the_whole_file(tmp_path: Path) -> None:
    frame = _frame(600)
    frame["advanced"] = frame["advanced"].astype("Float64")
    frame.loc[450, "advanced"] = None
    path = tmp_path / "pool.csv"
    frame.to_csv(path, index=False)
    parsed, _ = parse_spec(_spec(path))
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=200, max_shards=8)
    assert len(shards) == 3 and shards[0].unit == "bytes"
    count_chunks(parsed, path, shards[0])
    with pytest.raises(AuditInputError, match="first at row 450"):
        count_chunks(parsed, path, shards[2], chunk_rows=64)


def test_merge_checks_groups_like_the_engine(tmp_path: Path) -> None:
    frame = _frame(400)
    frame["sex"] = "female"
    path = tmp_path / "pool.csv"
    frame.to_csv(path, index=False)
    spec = _spec(path)
    parsed, _ = parse_spec(spec)
    parts = [
        count_chunks(parsed, path, s)
        for s in sharding.plan_for(parsed, path, rows=None, shard_rows=200, max_shards=4)
    ]
    with pytest.raises(AuditInputError, match="has only one group") as merged:
        sharding.results_from_parts(spec, parts, audit_id="x", path=path)
    with pytest.raises(AuditInputError) as whole:
        compute_results(spec, base_dir=tmp_path)
    assert str(merged.value) == str(whole.value)


def test_favorable_label_never_seen_is_an_input_error(tmp_path: Path) -> None:
    frame = _frame(300)
    frame["qualified"] = 0
    path = tmp_path / "pool.csv"
    frame.to_csv(path, index=False)
    spec = _spec(path)
    parsed, _ = parse_spec(spec)
    parts = [
        count_chunks(parsed, path, s)
        for s in sharding.plan_for(parsed, path, rows=None, shard_rows=300, max_shards=1)
    ]
    with pytest.raises(AuditInputError, match="dataset.favorable_label") as merged:
        sharding.results_from_parts(spec, parts, audit_id="x", path=path)
    with pytest.raises(AuditInputError) as whole:
        compute_results(spec, base_dir=tmp_path)
    assert str(merged.value) == str(whole.value)


def test_cancel_between_chunks(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    _frame(500).to_csv(path, index=False)
    parsed, _ = parse_spec(_spec(path))
    with pytest.raises(AuditCancelled):
        count_chunks(
            parsed,
            path,
            sharding.plan_for(parsed, path, rows=None, shard_rows=500, max_shards=1)[0],
            chunk_rows=100,
            should_cancel=lambda: True,
        )


def test_preflight_checks_the_expected_hash(tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    _frame(50).to_csv(path, index=False)
    spec = _spec(path)
    spec["dataset"]["sha256"] = "0" * 64
    with pytest.raises(AuditInputError, match="dataset.sha256"):
        sharding.preflight(parse_spec(spec)[0], path)
