"""Serving a large HTML report: stored once and streamed vs rendered on every request.

Builds a real audit with many intersectional groups (the engine on a synthetic
table), stores its results and its rendered report in a temporary SQLite
database, then serves the report to ``--readers`` concurrent readers (threads)
both ways and prints the peak memory (tracemalloc, all threads) and wall time of
each, and the ratios. The peer is what ``GET /report`` did before: load the
results document and render it, per request.

    python benchmarks/bench_report.py [--rows 200000] [--levels 24 24 8] [--readers 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_results(rows: int, levels: list[int], folder: Path) -> dict[str, Any]:
    from audit.engine.run import compute_results

    rng = np.random.default_rng(0)
    names = [f"a{i}" for i in range(len(levels))]
    columns = {n: rng.integers(0, k, rows).astype(str) for n, k in zip(names, levels)}
    frame = pd.DataFrame(columns)
    frame["label"] = rng.integers(0, 2, rows)
    frame["pred"] = (rng.random(rows) < 0.4).astype(int)
    path = folder / "pool.csv"
    frame.to_csv(path, index=False)
    spec = {
        "name": "bench-report",
        "domain": "hiring",
        "dataset": {"path": str(path), "label": "label", "prediction": "pred", "protected": names},
        "probes": [{"kind": "demographic", "intersectional": True}],
        "policy": {"max_groups": 100_000, "max_levels": 1000},
    }
    return compute_results(spec)


def measure(readers: int, serve: Callable[[], int], *, trace: bool) -> tuple[float, int]:
    """Wall time (s) or, with ``trace``, peak traced memory (MiB, all threads) of
    ``readers`` concurrent ``serve`` calls; and the bytes each reader got."""
    sizes: list[int] = []
    gc.collect()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=lambda: sizes.append(serve())) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    value = time.perf_counter() - start
    if trace:
        value = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return value, sizes[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--levels", type=int, nargs="+", default=[24, 24, 8])
    parser.add_argument("--readers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BIASAUDIT_ARTIFACT_DIR"] = tmp
        from audit.reports.html import render_html
        from audit.storage import db, repo, session_scope
        from audit.storage.errors import result_size
        from audit.storage.reports import get_report, iter_report

        db.upgrade()
        results = make_results(args.rows, args.levels, Path(tmp))
        html = render_html(results)
        with session_scope() as session:
            audit = repo.create_audit(
                session=session,
                project="bench",
                spec={},
                name="bench",
                domain="hiring",
                spec_sha256="0" * 64,
                status="running",
            )
            audit_id = audit.id
        with session_scope() as session:
            repo.store_results(
                session=session, audit_id=audit_id, results=results, reports={"html": html}
            )
        size, mib = result_size(results), 2**20
        print(f"results {size / mib:.1f} MiB of JSON, report {len(html) / mib:.1f} MiB")
        del results, html

        def rendered() -> int:  # the peer: GET /report before, per request
            with session_scope() as session:
                doc = repo.get_results(session=session, project="bench", audit_id=audit_id)
            assert doc is not None
            return len(render_html(doc).encode())

        def streamed() -> int:
            with session_scope() as session:
                stored = get_report(
                    session=session, project="bench", audit_id=audit_id, format="html"
                )
            assert stored is not None
            return sum(len(piece) for piece in iter_report(stored))

        peer_time, peer_size = measure(args.readers, rendered, trace=False)
        ours_time, ours_size = measure(args.readers, streamed, trace=False)
        peer_mem, _ = measure(args.readers, rendered, trace=True)
        ours_mem, _ = measure(args.readers, streamed, trace=True)
        print(f"{args.readers} concurrent readers   peak memory    wall time   bytes each")
        print(f"rendered per request  {peer_mem:9.1f} MiB {peer_time:9.2f} s  {peer_size:,}")
        print(f"stored, streamed      {ours_mem:9.1f} MiB {ours_time:9.2f} s  {ours_size:,}")
        print(
            f"ratio (rendered / streamed): memory {peer_mem / ours_mem:.0f}x, "
            f"time {peer_time / ours_time:.1f}x"
        )
        db.dispose_engines()


if __name__ == "__main__":
    main()
