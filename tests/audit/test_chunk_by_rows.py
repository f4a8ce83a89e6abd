"""A file of many rows is read in chunks even when its bytes are few (Parquet footer,
CSV rows estimated), with results equal to reading it whole; and a weighted audit
gives the same values in memory, chunked and sharded (Parquet and CSV)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit import run_audit
from audit.engine import reader
from audit.engine.run import CHUNKS_ABOVE, compute_results
from audit.engine.spec import parse_spec
from audit.settings import get_settings
from tests.audit.test_engine import _strip
from tests.audit.test_shard_reading import _frame, _sharded, _spec, _values
from tests.factories import spec_for, write_pool


def _rows_setting(monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", str(chunk_rows))
    get_settings.cache_clear()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_many_rows_are_read_in_chunks_whatever_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    path = write_pool(tmp_path / "pool.csv", n=3000, seed=5)
    if fmt == "parquet":
        path = tmp_path / "pool.parquet"
        pd.read_csv(tmp_path / "pool.csv").to_parquet(path, row_group_size=500)
    assert path.stat().st_size < get_settings().chunk_bytes
    whole = run_audit(spec_for(path), store=False)
    assert "chunked" not in whole["dataset"]
    _rows_setting(monkeypatch, 3000 // CHUNKS_ABOVE - 1)  # 3000 rows: just above the limit
    chunked = run_audit(spec_for(path), store=False)
    assert chunked["dataset"]["chunked"] is True
    assert _strip(chunked) == _strip(whole)
    _rows_setting(monkeypatch, 3000 // CHUNKS_ABOVE)  # at the limit: read whole
    assert "chunked" not in run_audit(spec_for(path), store=False)["dataset"]
    get_settings.cache_clear()


def test_csv_rows_are_estimated_from_the_first_mebibyte(tmp_path: Path) -> None:
    path = write_pool(tmp_path / "big.csv", n=120_000, seed=8)
    assert path.stat().st_size > reader.SAMPLE
    spec, _ = parse_spec(spec_for(path))
    estimate = reader.estimate_rows(spec.dataset, path)
    assert estimate is not None and abs(estimate - 120_000) < 120_000 * 0.05
    small = write_pool(tmp_path / "small.csv", n=10, seed=8)
    assert reader.estimate_rows(spec.dataset, small) == 10  # read whole: exact


def _close(a: Any, b: Any, where: str = "") -> None:
    """Equal documents, floats to 1e-9 relative (weights summed in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), where
    else:
        assert a == b, where


@pytest.mark.parametrize("weights", ["eighths", "any"])
def test_weighted_audit_in_memory_chunked_and_sharded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: str
) -> None:
    """Weights that add exactly (multiples of 1/8): every value equal to the last digit.
    Any floats: the sums are added chunk by chunk, part by part, in another order per
    way of reading, so the last digits may differ (and do here); to 1e-9 they agree."""
    frame = _frame(n=1500, seed=4)
    rng = np.random.default_rng(4)
    w = rng.random(len(frame)) * 3
    frame["w"] = np.round(w * 8) / 8 if weights == "eighths" else w
    csv, parquet = tmp_path / "w.csv", tmp_path / "w.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, row_group_size=100)

    def spec(name: str) -> dict[str, Any]:
        out = _spec(name)
        out["dataset"]["weight"] = "w"
        return out

    in_memory = _values(compute_results(spec(csv.name), audit_id="a", base_dir=tmp_path))
    docs = [
        _values(compute_results(spec(parquet.name), audit_id="a", base_dir=tmp_path)),
        _values(_sharded(spec(csv.name), csv, shard_rows=90)),
        _values(_sharded(spec(parquet.name), parquet, shard_rows=250)),
    ]
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1")
    _rows_setting(monkeypatch, 128)
    for path in (csv, parquet):
        doc = compute_results(spec(path.name), audit_id="a", base_dir=tmp_path)
        assert doc["dataset"]["chunked"] is True
        docs.append(_values(doc))
    get_settings.cache_clear()
    for doc in docs:
        _close(doc, in_memory)
    if weights == "eighths":
        assert all(doc == in_memory for doc in docs)
    else:
        assert any(doc != in_memory for doc in docs)  # the last digits: not promised
