"""dataset.proxy on a file above BIASAUDIT_CHUNK_BYTES: read in chunks, same result.

Posteriors are computed chunk by chunk and only they (with the decisions and weights)
are kept, so the multiple imputations run on the arrays an in-memory run has: every
group, interval and finding must be equal. Sharding is not planned for a proxy (the
EM fit behind the imputations needs every row's posterior at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.engine import sharding
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.examples.lending_proxy import generate_pool
from audit.settings import get_settings
from audit.sources.census import fetch, load_tables


@pytest.fixture(scope="module")
def pool_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fetch()
    pool = generate_pool(load_tables(levels=("zcta",)), n=5000, seed=21, approval_ratio=0.7)
    rng = np.random.default_rng(0)
    pool["age_band"] = rng.choice(["<40", ">=40"], size=len(pool))
    pool["w"] = rng.uniform(0.5, 2.0, size=len(pool))
    path = tmp_path_factory.mktemp("chunked") / "applicants.csv"
    pool.drop(columns=["true_race"]).to_csv(path, index=False)
    return path


def _spec(path: Path, protected: list[str]) -> dict[str, Any]:
    return {
        "name": "proxy-chunked",
        "domain": "lending",
        "dataset": {
            "path": str(path),
            "prediction": "approved",
            "protected": protected,
            "weight": "w",
            "reference": {"race_proxy": "white"},
            "proxy": {
                "method": "bifsg",
                "surname": "last_name",
                "first_name": "first_name",
                "zcta": "zip",
            },  # fmt: skip
        },
        "probes": [{"kind": "demographic"}],
    }


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "1300")  # four chunks, the last one short
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _same(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    else:
        assert a == b


@pytest.mark.parametrize("protected", [[], ["age_band"]])
def test_chunked_proxy_audit_equals_the_in_memory_one(
    pool_csv: Path, protected: list[str], request: pytest.FixtureRequest
) -> None:
    whole = compute_results(_spec(pool_csv, protected))
    assert not whole["dataset"].get("chunked")
    request.getfixturevalue("chunked")
    parts = compute_results(_spec(pool_csv, protected))
    assert parts["dataset"]["chunked"] is True
    assert parts["dataset"]["rows"] == whole["dataset"]["rows"] == 5000
    assert [p["attribute"] for p in parts["probes"]] == [p["attribute"] for p in whole["probes"]]
    for a, b in zip(parts["probes"], whole["probes"], strict=True):
        _same(a["groups"], b["groups"])  # chunk sums of float weights: rounding only
    proxy = parts["probes"][-1]
    assert proxy["attribute"] == "race_proxy"
    assert proxy["groups"] == whole["probes"][-1]["groups"]  # the very same imputations
    assert proxy["summary"]["proxy"] == whole["probes"][-1]["summary"]["proxy"]
    _same(parts["findings"], whole["findings"])
    assert parts["verdict"] == whole["verdict"]


def test_a_proxy_audit_is_never_sharded(pool_csv: Path) -> None:
    spec, _ = parse_spec(_spec(pool_csv, ["age_band"]))
    assert not sharding.shardable(spec)
    assert not sharding.should_shard(spec, pool_csv, rows=5000, threshold_rows=1,
                                     threshold_bytes=1)  # fmt: skip
