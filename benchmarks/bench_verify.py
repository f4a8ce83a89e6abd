"""Cost of verifying an upload's sha256 before a sharded audit (docs/performance.md).

``python benchmarks/bench_verify.py --rows 5000000`` writes bench_scale's synthetic
decision log as CSV into a temporary folder, then times, on the same file: the planner's
verification (``sharding.preflight`` with the upload's ``dataset.sha256``: one read of
the whole file), and the sharded audit it precedes (plan, shards counted by a pool of
``--workers`` processes, merge), as ``bench_scale.py`` runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scale  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--shard-rows", type=int, default=1_000_000)
    parser.add_argument("--max-shards", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from audit.engine import sharding
    from audit.engine.spec import parse_spec
    from probes.util import hash_file

    with tempfile.TemporaryDirectory() as tmp:
        _, csv = bench_scale.generate(Path(tmp), args.rows, 1 << 20, formats=("csv",))
        size_mb = csv.stat().st_size / 1e6
        digest = hash_file(csv)
        raw = bench_scale.spec_for(csv)
        raw["dataset"].update(id="bench", sha256=digest)
        spec, _ = parse_spec(raw)
        verify = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sharding.preflight(spec, csv)  # columns + the whole file's sha256
            verify.append(time.perf_counter() - t0)
        audits = []
        with ProcessPoolExecutor(args.workers) as pool:
            for _ in range(args.repeat):
                audits.append(bench_scale.sharded(csv, pool, args, sha256=digest)["seconds"])
        v, a = min(verify), min(audits)
        print(f"rows={args.rows} csv={size_mb:.0f} MB (page cache warm)")
        print(f"verify (preflight, sha256 of the whole file): {v:.2f} s = {size_mb / v:.0f} MB/s")
        print(f"sharded audit (plan, {args.workers} workers, merge): {a:.2f} s")
        print(f"verification adds {100 * v / a:.0f} % to the sharded audit")


if __name__ == "__main__":
    main()
