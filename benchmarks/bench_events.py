"""Benchmark the event log: what the hash chain costs a submission batch, and verify-log's speed.

Peer: the same storage calls without the log. On a PostgreSQL database of its own
(and a SQLite file), it times

- **batches of submissions**: ``insert_audits`` of B rows, then commit, with and
  without ``append_events`` for those rows (what the API's group commit does), from
  T threads at once: the head row serialises the appends, so this shows the cost of
  that lock under concurrency. Prints submissions/s of each and the ratio;
- **verify-log**: entries and results checked per second over the log just written.

Usage::

    python benchmarks/bench_events.py [--batches 200] [--batch 20] [--threads 1,4]

Needs PostgreSQL at ``BIASAUDIT_TEST_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres); the database it creates is dropped at
the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from audit.storage import db
from audit.storage.audits import insert_audits, new_audit_row, submitted_event
from audit.storage.db import session_scope
from audit.storage.events import append_events, verify_log
from audit.storage.repo import ensure_project

ADMIN_URL = os.environ.get(
    "BIASAUDIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SPEC = {"name": "bench", "domain": "hiring", "dataset": {"id": "x"}}


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        new_audit_row(
            project="bench",
            spec=SPEC,
            name="bench",
            domain="hiring",
            spec_sha256="0" * 64,
            submitted_by="Bench Person",
        )  # fmt: skip
        for _ in range(n)
    ]


def _submit(url: str, *, batches: int, batch: int, threads: int, log: bool) -> float:
    """Submissions per second: ``threads`` threads, each committing its share of batches."""
    per = batches // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per):
            rows = _rows(batch)
            with session_scope(url) as session:
                insert_audits(session=session, rows=rows)
                if log:
                    append_events(session=session, entries=[submitted_event(r) for r in rows])

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return per * threads * batch / (time.perf_counter() - start)


def _verify(url: str) -> tuple[float, int]:
    with session_scope(url) as session:
        start = time.perf_counter()
        report = verify_log(session=session)
        elapsed = time.perf_counter() - start
    assert report.intact, report.breaks[:3]
    return report.entries / elapsed, report.entries


def _bench(url: str, label: str, args: argparse.Namespace) -> None:
    db.upgrade(url)
    with session_scope(url) as session:
        ensure_project(session=session, name="bench")
    print(f"\n{label}: batches of {args.batch} submissions, {args.batches} batches per run")
    print("threads | without log subm/s | with log subm/s | ratio (with/without)")
    for threads in [int(t) for t in args.threads.split(",")]:
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):  # interleaved: without, with, without, with ...
            for log in (False, True):
                rates[log].append(
                    _submit(url, batches=args.batches, batch=args.batch, threads=threads, log=log)
                )
        best = {k: max(v) for k, v in rates.items()}
        print(f"{threads:7d} | {best[False]:18,.0f} | {best[True]:15,.0f} | "
              f"{best[True] / best[False]:.2f}")  # fmt: skip
    speed, entries = _verify(url)
    print(f"verify-log: {entries:,} entries at {speed:,.0f} entries/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    name = f"biasaudit_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    pg = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        _bench(pg.render_as_string(hide_password=False), "PostgreSQL", args)
        with tempfile.TemporaryDirectory() as tmp:
            _bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite", args)
    finally:
        db.dispose_engines()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
