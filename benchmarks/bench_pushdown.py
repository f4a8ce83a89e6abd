"""Counts pushed down to PostgreSQL vs pulling the rows, for a ``dataset.source`` audit.

Creates a scratch database with a ``decisions`` table of N rows (generated inside
PostgreSQL), then audits it the two ways a worker can:

- push-down: one ``GROUP BY`` in the database, only the count table travels
  (``audit.engine.pushdown.results_at_source``);
- pull: the query's rows streamed into a CSV file, then read and counted by the engine
  (``audit.engine.dbsource.materialize`` + ``compute_results``), as before.

Prints wall time, bytes that left the database (as CSV text) and whether every
value of the two results is equal; drops the database at the end.

    python benchmarks/bench_pushdown.py [--rows 1000000 10000000]
        [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from audit.engine.dbsource import materialize
from audit.engine.pushdown import results_at_source
from audit.engine.run import compute_results

FILL = """
insert into decisions
select (array['female','male'])[1 + (g %% 2)],
       (array['White','Black','Hispanic','Asian','Other'])[1 + ((g / 2) %% 5)],
       (array['<40','40-60','60+'])[1 + ((g / 10) %% 3)],
       (random() < 0.4)::int,
       (random() < case when g %% 2 = 0 then 0.30 else 0.38 end)::int
from generate_series(1, %s) as g
"""


def _spec() -> dict[str, Any]:
    return {
        "name": "bench-pushdown",
        "domain": "hiring",
        "dataset": {
            "source": "bench",
            "query": "select sex, race, age_group, qualified, advanced from decisions",
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race", "age_group"],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
    }


def _comparable(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k not in ("audit", "manifest", "dataset")}


def run(rows: int, admin_url: str) -> None:
    name = f"biasaudit_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(admin_url).set(database=name)
    try:
        with psycopg.connect(url.render_as_string(False), autocommit=True) as conn:
            conn.execute(
                "create table decisions (sex text, race text, age_group text, "
                "qualified int, advanced int)"
            )
            t = time.perf_counter()
            conn.execute(FILL, (rows,))
            conn.execute("vacuum analyze decisions")
            fill = time.perf_counter() - t
        sa_url = url.set(drivername="postgresql+psycopg").render_as_string(False)
        spec = _spec()
        t = time.perf_counter()
        counted = results_at_source(spec, sa_url, audit_id="bench", max_groups=10_000_000)
        push = time.perf_counter() - t
        assert counted is not None
        pushed, info = counted
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.csv"
            t = time.perf_counter()
            materialize(spec["dataset"], sa_url, out, max_rows=rows + 1)
            pulled_spec = {**spec, "dataset": {**spec["dataset"], "path": str(out)}}
            for key in ("source", "query"):
                pulled_spec["dataset"].pop(key)
            pulled = compute_results(pulled_spec, audit_id="bench")
            pull = time.perf_counter() - t
            pulled_bytes = out.stat().st_size
        same = _comparable(pushed) == _comparable(pulled)
        print(
            f"{rows:>11,} rows (filled in {fill:6.1f} s) | push-down {push:7.2f} s, "
            f"{info['groups']} groups | pull {pull:7.2f} s, {pulled_bytes / 1e6:8.1f} MB of CSV "
            f"| pull/push {pull / push:6.1f}x | equal: {same}"
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BIASAUDIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for rows in args.rows:
        run(rows, args.admin_url)


if __name__ == "__main__":
    main()
