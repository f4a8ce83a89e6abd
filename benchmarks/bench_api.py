"""Benchmark the HTTP API: submissions per second and latency, then end-to-end audit latency.

Starts ``biasaudit serve`` (uvicorn) as a subprocess on a free loopback port,
with a PostgreSQL database and a Redis db index of its own, creates a token
with ``biasaudit keys create``, uploads a small dataset, and drives
``POST /v1/audits`` from this (separate) process with a bounded number of
requests at 1, 10 and 50 concurrent clients (asyncio + httpx, one keep-alive
connection per client). It prints submissions/s and p50/p99 latency.

If ``workers/cli.py`` exists it also starts ``biasaudit worker --queues cpu``
and measures small audits end to end (submit -> succeeded, polling every
5 ms), with the queue overhead: the time from the commit to a worker's claim
(``started_at - created_at``) and end-to-end minus the run time.

Usage::

    python benchmarks/bench_api.py [--requests 1:200,10:500,50:1000] [--e2e 20]

Needs PostgreSQL at ``BIASAUDIT_TEST_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres) and Redis at 127.0.0.1:6379.
Everything it creates (database, Redis db 13, temp folder) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from psycopg import sql
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "BIASAUDIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_csv(rows: int = 1000) -> bytes:
    lines = ["sex,race,qualified,advanced"]
    for i in range(rows):
        sex = "female" if i % 2 else "male"
        race = ("Black", "White", "Asian")[i % 3]
        selected = i % 4 < 2 if sex == "male" else i % 8 < 3
        lines.append(f"{sex},{race},{(i // 3) % 2},{int(selected)}")
    return ("\n".join(lines) + "\n").encode()


def spec(dataset_id: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "domain": "hiring",
        "dataset": {
            "id": dataset_id,
            "label": "qualified",
            "prediction": "advanced",
            "protected": ["sex", "race"],
        },
        "probes": [{"kind": "demographic", "intersectional": True}],
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Service:
    """The database, Redis db, folder and processes of one benchmark run; cleaned up on exit."""

    def __init__(self, api_workers: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="biasaudit-bench-"))
        self.db_name = f"biasaudit_bench_{secrets.token_hex(4)}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))
        db_url = make_url(ADMIN_URL).set(database=self.db_name)
        self.env = {
            **os.environ,
            "BIASAUDIT_DATABASE_URL": db_url.render_as_string(hide_password=False),
            "BIASAUDIT_BROKER_URL": REDIS_URL,
            "BIASAUDIT_ARTIFACT_DIR": str(self.tmp / "artifacts"),
            "BIASAUDIT_LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": str(api_workers),
        }
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.flushdb()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "audit.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return result.stdout.strip()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "audit.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
        self.procs.append(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError((self.tmp / "serve.log").read_text(errors="replace"))
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the API did not become ready")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.redis.flushdb()
        self.redis.close()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.db_name)
                )
            )
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)


async def drive(base: str, token: str, dataset_id: str, *, clients: int, total: int) -> dict:
    """``total`` submissions spread over ``clients`` concurrent connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]

    async def client(i: int, count: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as c:
            await c.get("/v1/audits", params={"limit": 1})  # open the connection first
            for j in range(count):
                body = spec(dataset_id, f"bench-{clients}-{i}-{j}")
                start = time.perf_counter()
                response = await c.post("/v1/audits", json=body, timeout=30)
                latencies.append(time.perf_counter() - start)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client(i, n) for i, n in enumerate(per_client)))
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": total,
        "per_s": total / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * pct(latencies, 99),
        "statuses": statuses,
    }


def end_to_end(service: Service, token: str, dataset_id: str, runs: int) -> list[dict] | None:
    """Small audits one at a time through a real worker: submit -> succeeded."""
    if not (ROOT / "workers" / "cli.py").exists():
        return None
    service.start("worker", "worker", "--queues", "cpu", "--concurrency", "1")
    out = []
    with httpx.Client(base_url=service.base, headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(runs + 1):  # the first run warms the worker up (imports, models)
            start = time.perf_counter()
            audit_id = c.post("/v1/audits", json=spec(dataset_id, f"e2e-{i}")).json()["id"]
            deadline = time.monotonic() + (180 if i == 0 else 60)
            while True:
                state = c.get(f"/v1/audits/{audit_id}").json()
                if state["status"] in ("succeeded", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"audit {audit_id} still {state['status']}")
                time.sleep(0.005)
            total = time.perf_counter() - start
            if state["status"] != "succeeded":
                raise RuntimeError(f"audit {audit_id} {state['status']}: {state['error']}")
            created, started, finished = (
                datetime.fromisoformat(state[k])
                for k in ("created_at", "started_at", "finished_at")
            )
            if i > 0:
                run = (finished - started).total_seconds()
                out.append(
                    {
                        "total": total,
                        "claim_wait": (started - created).total_seconds(),
                        "run": run,
                        "overhead": total - run,
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", default="1:200,10:500,50:1000", help="clients:requests,...")
    p.add_argument("--e2e", type=int, default=20, help="end-to-end audits to time (0: skip)")
    p.add_argument("--api-workers", type=int, default=1, help="uvicorn processes")
    args = p.parse_args(argv)
    levels = [tuple(int(x) for x in part.split(":")) for part in args.requests.split(",")]
    service = Service(args.api_workers)
    try:
        token = service.cli("keys", "create", "--role", "submitter", "--project", "bench")
        service.wait_ready(service.start("serve", "serve", "--port", str(service.port)))
        headers = {"Authorization": f"Bearer {token}"}
        files = {"file": ("bench.csv", small_csv(), "text/csv")}
        dataset_id = httpx.post(f"{service.base}/v1/datasets", files=files, headers=headers).json()[
            "id"
        ]
        print(
            f"# bench_api: {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} CPUs, uvicorn processes: {args.api_workers}"
        )
        print(f"{'clients':>7} {'requests':>8} {'subm/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for clients, total in levels:
            asyncio.run(
                drive(service.base, token, dataset_id, clients=clients, total=min(20, total))
            )
            service.redis.delete("cpu")  # keep the queue small between levels
            r = asyncio.run(drive(service.base, token, dataset_id, clients=clients, total=total))
            service.redis.delete("cpu")
            print(
                f"{r['clients']:>7} {r['requests']:>8} {r['per_s']:>8.1f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f}  {r['statuses']}"
            )
        if args.e2e <= 0:
            print("end-to-end: skipped (--e2e 0)")
            return 0
        runs = end_to_end(service, token, dataset_id, args.e2e)
        if runs is None:
            print("end-to-end: skipped (workers/cli.py not found: no worker to run audits)")
            return 0
        for key, label in [
            ("total", "submit -> succeeded"),
            ("run", "run time (started -> finished)"),
            ("claim_wait", "commit -> claimed by worker"),
            ("overhead", "queue overhead (total - run)"),
        ]:
            values = [r[key] * 1000 for r in runs]
            print(
                f"end-to-end {label:<32} p50 {statistics.median(values):7.1f} ms   "
                f"max {max(values):7.1f} ms   ({len(values)} audits, 1000 rows)"
            )
        return 0
    finally:
        service.close()


if __name__ == "__main__":
    sys.exit(main())
