"""Shards read by ranged GETs from an S3-compatible store vs the same shards on a local file.

Starts moto's server on loopback (or uses ``--endpoint``), writes a seeded applicant
pool of N rows as CSV and as Parquet (16 row groups), puts both in a fresh bucket,
plans the shards from the store (:class:`audit.storage.ranged.StoredFile`) and counts
each shard twice: from the local file and by range from the store, each with a fresh
reader as a separate machine would. Prints, per file, the planner's and each shard's
bytes and GETs, the shard's own range (CSV), the times, and whether the merged results
are equal to the last digit.

    python benchmarks/bench_ranged.py [--rows 2000000] [--endpoint http://127.0.0.1:9000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pandas as pd

from audit.engine import data as data_mod
from audit.engine import sharding
from audit.engine.spec import parse_spec
from audit.storage.ranged import StoredFile
from audit.storage.s3 import S3Store

KEY, SECRET = "bench-access-key", "bench-secret-key"


def _moto() -> tuple[str, subprocess.Popen[bytes]]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return endpoint, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("moto server did not start")


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def _pool(path: Path, rows: int) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    sex = rng.choice(["female", "male"], size=rows)
    frame = pd.DataFrame(
        {
            "sex": sex,
            "race": rng.choice(["Black", "White", "Asian"], size=rows),
            "qualified": rng.integers(0, 2, size=rows),
            "advanced": (rng.random(rows) < np.where(sex == "female", 0.25, 0.45)).astype(int),
        }
    )
    frame.to_csv(path, index=False)
    frame.to_parquet(path.with_suffix(".parquet"), row_group_size=max(1, rows // 16))


def _spec(path: Path) -> dict[str, Any]:
    return {
        "name": "bench-ranged",
        "domain": "hiring",
        "dataset": {
            "path": str(path),
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race"],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
    }


def _one(path: Path, store: S3Store, rows: int) -> None:
    body = path.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    store.put_bytes(f"acme/{path.name}", body, "application/octet-stream")
    info = store.head(f"acme/{path.name}")

    def fresh() -> StoredFile:
        return StoredFile(store, f"acme/{path.name}", size=info.size, etag=info.etag, sha256=sha)

    raw = _spec(path)
    spec, _ = parse_spec(raw)
    planner = fresh()
    t0 = time.perf_counter()
    plan = sharding.plan_for(
        spec, cast(Path, planner), rows=None, shard_rows=max(1, rows // 4), max_shards=8
    )
    print(
        f"{path.name}: {len(body) / 1e6:.1f} MB, {len(plan)} shards; plan "
        f"{time.perf_counter() - t0:.2f} s, {planner.stats.bytes / 1e3:.0f} kB "
        f"in {planner.stats.requests} GETs"
    )
    local_parts, ranged_parts = [], []
    for shard in plan:
        t0 = time.perf_counter()
        local_parts.append(
            data_mod.count_chunks(
                spec.dataset, path, shard=shard, chunk_rows=1_000_000, max_levels=1000
            )
        )
        t_local = time.perf_counter() - t0
        reader = fresh()
        reader.horizon = shard.stop if shard.unit == "bytes" else None  # as a shard task
        t0 = time.perf_counter()
        ranged_parts.append(
            data_mod.count_chunks(
                spec.dataset, cast(Path, reader), shard=shard, chunk_rows=1_000_000, max_levels=1000
            )
        )
        t_ranged = time.perf_counter() - t0
        own = f" (range {(shard.stop - shard.start) / 1e6:.2f} MB)" if shard.unit == "bytes" else ""
        print(
            f"  shard {shard.index}: {reader.stats.bytes / 1e6:.2f} MB in "
            f"{reader.stats.requests} GETs{own}; {t_ranged:.2f} s by range, {t_local:.2f} s local"
        )
    docs = [
        sharding.results_from_parts(raw, parts, audit_id="b", path=path, sha256=sha)
        for parts in (local_parts, ranged_parts)
    ]
    for doc in docs:
        doc["audit"].pop("started_at", None)
        doc["audit"].pop("finished_at", None)
    same = json.dumps(docs[0], sort_keys=True) == json.dumps(docs[1], sort_keys=True)
    print(f"  results equal to the last digit: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--endpoint", help="an S3-compatible endpoint (default: start moto)")
    args = parser.parse_args()
    proc = None
    endpoint = args.endpoint
    if endpoint is None:
        endpoint, proc = _moto()
    try:
        client = _client(endpoint)
        bucket = f"bench-{os.getpid()}"
        client.create_bucket(Bucket=bucket)
        store = S3Store(bucket, "bench", client)
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "pool.csv"
            _pool(csv, args.rows)
            for path in (csv, csv.with_suffix(".parquet")):
                _one(path, store, args.rows)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
