"""Whole lending audit with a race proxy: 1M applicants, BISG + demographic + pricing.

Writes a synthetic pool drawn from the census tables (audit.examples.lending_proxy),
then times ``compute_results`` on it: reading the file, BISG posteriors for every
row, the probability-weighted ``race_proxy`` counts with 20 multiple imputations
and the threshold assignment, and the outcome-disparity probe on the APR. The peer
is the proxy library alone (the BISG posteriors), the ratio says what the audit adds.

    python benchmarks/bench_lending.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from audit.engine.run import compute_results
from audit.examples.lending_proxy import generate_pool
from audit.sources.census import load_tables
from probes.proxy import bisg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    tables = load_tables(levels=("zcta",))
    pool = generate_pool(tables, n=args.rows, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "applicants.parquet"
        pool.drop(columns=["true_race"]).to_parquet(path)
        spec = {
            "name": "bench-lending",
            "domain": "lending",
            "dataset": {
                "path": str(path),
                "prediction": "approved",
                "protected": [],
                "proxy": {"method": "bisg", "surname": "last_name", "zcta": "zip"},
                "reference": {"race_proxy": "white"},
                "outcome": "apr",
            },
            "probes": [{"kind": "demographic"}],
        }
        compute_results(spec)  # warm: tables cached, imports done
        t0 = time.perf_counter()
        doc = compute_results(spec)
        audit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bisg(tables, surname=pool.last_name, geography=pool.zip)
    proxy_s = time.perf_counter() - t0
    print(f"rows {args.rows:,}: whole audit {audit_s:.2f} s (verdict {doc['verdict']})")
    print(f"BISG posteriors alone {proxy_s:.2f} s; audit / proxy = {audit_s / proxy_s:.2f}")


if __name__ == "__main__":
    main()
