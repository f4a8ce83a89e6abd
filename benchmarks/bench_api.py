"""Benchmark the HTTP API: submissions per second and latency, then end-to-end audit latency.

Starts ``biasaudit serve`` (uvicorn) as a subprocess on a free loopback port,
with a PostgreSQL database and a Redis db index of its own, creates a token
with ``biasaudit keys create``, uploads a small dataset, and drives
``POST /v1/audits`` from this (separate) process with a bounded number of
requests, in two modes:

- closed loop (saturation): 1, 10 and 50 clients, each sending its next
  request as soon as the previous one is answered. This measures capacity;
  once the server is saturated the latency is mostly the queue in front of it.
- open loop (production-like): 50 clients whose submissions arrive as a
  Poisson process at a stated total rate below capacity (default: half the
  closed-loop throughput at 50 clients), for a bounded time. Latency is
  measured from each request's *scheduled* arrival, so a request delayed
  behind a slow one on its client's connection counts its wait (no
  coordinated omission).

Each row also reports the CPU time the server process(es) and this client
spent per submission, since both share the machine's cores. The load is sent
by a minimal HTTP/1.1 keep-alive client on asyncio streams (one connection per
client, ``Content-Length`` bodies only), because httpx spent 3-5 ms of CPU
per request here, taking cores from the server and adding its own event-loop
delay to the latency it measured. Setup and the end-to-end runs use httpx.

If ``workers/cli.py`` exists it also starts ``biasaudit worker --queues cpu``
and measures small audits end to end (submit -> succeeded, polling every
5 ms), with the queue overhead: the time from the commit to a worker's claim
(``started_at - created_at``) and end-to-end minus the run time.

Usage::

    python benchmarks/bench_api.py [--requests 1:500,10:2000,50:5000] [--e2e 20]
        [--open-clients 50] [--open-rate R] [--open-seconds 20] [--api-workers 1]

Needs PostgreSQL at ``BIASAUDIT_TEST_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres) and Redis at 127.0.0.1:6379 (or the port in
BIASAUDIT_TEST_REDIS_PORT).
Everything it creates (database, Redis db 12, temp folder) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
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
REDIS_DB = 12  # the tests use 13-15: a benchmark may run beside them
# Another checkout may use 6379: BIASAUDIT_TEST_REDIS_PORT picks the server, as for the tests.
REDIS_PORT = int(os.environ.get("BIASAUDIT_TEST_REDIS_PORT", "6379"))
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"


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


def process_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime stime
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


class Conn:
    """One keep-alive HTTP/1.1 connection to the API (loopback); just enough for the load."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: dict | None = None) -> int:
        """Send one request, read the whole response; return its status code.

        uvicorn closes a keep-alive connection idle for 5 s; like httpx, reopen it
        and send again when the server closed it before answering (counted).
        """
        try:
            return await self._request(method, path, body)
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            self.reconnects += 1
            await self.close()
            await self.open()
            return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: dict | None) -> int:
        assert self.reader is not None and self.writer is not None
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        ).encode()
        self.writer.write(head + self.auth + b"\r\n" + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass


def _host_port(base: str) -> tuple[str, int]:
    host, _, port = base.removeprefix("http://").partition(":")
    return host, int(port)


async def drive(base: str, token: str, dataset_id: str, *, clients: int, total: int) -> dict:
    """Closed loop: ``total`` submissions over ``clients`` connections, each back-to-back."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]

    async def client(i: int, count: int) -> None:
        c = Conn(*_host_port(base), token)
        await c.open()
        try:
            await c.request("GET", "/v1/audits?limit=1")  # warm the connection
            warm.append(i)
            if len(warm) == clients:
                ready.set()
            await ready.wait()  # all connections open: start together, time from here
            for j in range(count):
                body = spec(dataset_id, f"bench-{clients}-{i}-{j}")
                start = time.perf_counter()
                status = await asyncio.wait_for(c.request("POST", "/v1/audits", body), 30)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            await c.close()

    warm: list[int] = []
    ready = asyncio.Event()
    start = 0.0

    async def clock() -> None:
        nonlocal start
        await ready.wait()
        start = time.perf_counter()

    await asyncio.gather(clock(), *(client(i, n) for i, n in enumerate(per_client)))
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": total,
        "per_s": total / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * pct(latencies, 99),
        "statuses": statuses,
    }


async def drive_open(
    base: str, token: str, dataset_id: str, *, clients: int, rate: float, seconds: float, seed: int
) -> dict:
    """Open loop: Poisson arrivals at ``rate`` per second in total, spread over ``clients``.

    Each client draws exponential gaps at ``rate / clients`` and sends on its own
    connection; a request due while the previous one is in flight waits, and its
    latency counts from the scheduled time. Arrivals stop after ``seconds``.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    late: list[float] = []

    async def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        c = Conn(*_host_port(base), token)
        await c.open()
        try:
            await c.request("GET", "/v1/audits?limit=1")  # warm the connection
            await ready.wait()
            due = t0 + rng.expovariate(rate / clients)
            j = 0
            while due < t0 + seconds:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                body = spec(dataset_id, f"open-{i}-{j}")
                status = await asyncio.wait_for(c.request("POST", "/v1/audits", body), 30)
                latencies.append(time.perf_counter() - due)
                statuses[status] = statuses.get(status, 0) + 1
                due += rng.expovariate(rate / clients)
                j += 1
        finally:
            reconnects.append(c.reconnects)
            await c.close()

    reconnects: list[int] = []
    ready = asyncio.Event()
    t0 = time.perf_counter() + 3600.0
    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(1.0)  # connections open
    t0 = time.perf_counter() + 0.1
    ready.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": len(latencies),
        "offered_per_s": rate,
        "per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * pct(latencies, 99),
        "max_ms": 1000 * max(latencies),
        "sent_late": len([x for x in late if x > 0.005]),
        "reconnects": sum(reconnects),
        "statuses": statuses,
    }


def measured(service: Service, run: Any) -> dict:
    """Run the coroutine factory ``run``; add server and client CPU ms per request."""
    server_pgid = service.procs[0].pid
    server0, client0 = process_cpu_s(server_pgid), own_cpu_s()
    result: dict = asyncio.run(run())
    n = max(1, result["requests"])
    result["server_cpu_ms"] = 1000 * (process_cpu_s(server_pgid) - server0) / n
    result["client_cpu_ms"] = 1000 * (own_cpu_s() - client0) / n
    return result


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
    p.add_argument("--requests", default="1:500,10:2000,50:5000", help="clients:requests,...")
    p.add_argument("--e2e", type=int, default=20, help="end-to-end audits to time (0: skip)")
    p.add_argument("--api-workers", type=int, default=1, help="uvicorn processes")
    p.add_argument("--open-clients", type=int, default=50, help="open-loop clients (0: skip)")
    p.add_argument(
        "--open-rate",
        type=float,
        default=None,
        help="open-loop offered load, submissions/s in total "
        "(default: half the closed-loop throughput at the most clients)",
    )
    p.add_argument("--open-seconds", type=float, default=20.0, help="open-loop duration")
    p.add_argument("--seed", type=int, default=0, help="seed of the open-loop arrivals")
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
        base = service.base
        print("closed loop (saturation: each client sends again as soon as it is answered)")
        print(
            f"{'clients':>7} {'requests':>8} {'subm/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'srv cpu':>8} {'cli cpu':>8}  statuses   (cpu: ms per submission)"
        )
        capacity = 0.0
        for clients, total in levels:
            asyncio.run(drive(base, token, dataset_id, clients=clients, total=min(20, total)))
            service.redis.delete("cpu")  # keep the queue small between levels
            r = measured(
                service,
                lambda c=clients, n=total: drive(base, token, dataset_id, clients=c, total=n),
            )
            service.redis.delete("cpu")
            capacity = r["per_s"]
            print(
                f"{r['clients']:>7} {r['requests']:>8} {r['per_s']:>8.1f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f} {r['server_cpu_ms']:>8.2f} {r['client_cpu_ms']:>8.2f}  "
                f"{r['statuses']}"
            )
        if args.open_clients > 0:
            rate = args.open_rate or round(capacity / 2, 1)
            r = measured(
                service,
                lambda: drive_open(
                    base,
                    token,
                    dataset_id,
                    clients=args.open_clients,
                    rate=rate,
                    seconds=args.open_seconds,
                    seed=args.seed,
                ),
            )
            service.redis.delete("cpu")
            print(
                f"open loop ({r['clients']} clients, Poisson arrivals, offered {rate:.1f} "
                f"submissions/s in total for {args.open_seconds:g} s; latency from the "
                "scheduled arrival)"
            )
            print(
                f"{'clients':>7} {'requests':>8} {'subm/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                f"{'max ms':>8} {'srv cpu':>8} {'cli cpu':>8}  late  reopened  statuses"
            )
            print(
                f"{r['clients']:>7} {r['requests']:>8} {r['per_s']:>8.1f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['server_cpu_ms']:>8.2f} "
                f"{r['client_cpu_ms']:>8.2f} {r['sent_late']:>5} {r['reconnects']:>9}  "
                f"{r['statuses']}"
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
