"""Real processes for integration tests: ``biasaudit worker``, ``biasaudit beat``, ``serve``.

Everything is real: PostgreSQL (a database of their own, so their reconciler
never touches other tests' rows), Redis
(127.0.0.1:6379, db index 14, flushed at the start; tests that restart Redis
start their own server), Celery workers and beat started with the
``biasaudit`` entry point, and uvicorn. Short leases and intervals come from
``BIASAUDIT_*`` variables so that recovery takes seconds:

- lease 3 s, reconciler every 1 s, queued audits re-published after 2 s;
- workers start as ``python -m tests.service_hooks worker ...``: ``biasaudit
  worker`` with the tests' fault-injection plug-in registered, so a spec whose
  description holds ``biasaudit-test:crash`` SIGKILLs its worker process,
  ``biasaudit-test:sleep=S`` keeps it busy S seconds and ``biasaudit-test:hold=S``
  holds the GIL S seconds (see ``tests/service_hooks.py``). Production workers
  hold no such code.

Each service logs to a file under the test's tmp dir; ``Service.log_text()``
reads it (tests scan the logs for tokens).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from audit.settings import get_settings
from audit.storage import db, repo, session_scope
from tests.conftest import redis_test_url, scratch_database, sqlalchemy_url

REDIS_URL = redis_test_url(14)
ROOT = Path(__file__).resolve().parents[2]
BIASAUDIT = str(Path(sys.executable).parent / "biasaudit")
HOOKED_WORKER = [sys.executable, "-m", "tests.service_hooks"]  # biasaudit + the fault plug-in
READY_TIMEOUT = 60.0


OWNER_VAR = "BIASAUDIT_TEST_OWNER_PID"  # the pytest process that started a service


def pytest_itemcollected(item: pytest.Item) -> None:
    """Real services: PostgreSQL, Redis, Celery workers and uvicorn."""
    item.add_marker(pytest.mark.services)


def reap_orphans() -> list[int]:
    """Kill test services whose pytest process is gone (a run killed mid-test leaves them).

    Services run in their own sessions, so they outlive a killed pytest and would
    consume the next run's messages on the same Redis db. Each carries
    ``OWNER_VAR``; only processes whose owner no longer exists are killed.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    killed: list[int] = []
    prefix = OWNER_VAR.encode() + b"="
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        owner = next((v[len(prefix) :] for v in environ if v.startswith(prefix)), b"")
        if not owner.isdigit() or (proc / owner.decode()).exists():
            continue
        try:
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
        except OSError:
            pass
    return killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(step)


def service_env(
    *, database_url: str, broker_url: str, base: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The ``BIASAUDIT_*`` variables of one test stack (processes and test process alike)."""
    env = {
        "BIASAUDIT_DATABASE_URL": database_url,
        "BIASAUDIT_BROKER_URL": broker_url,
        "BIASAUDIT_ARTIFACT_DIR": str(base / "artifacts"),
        "BIASAUDIT_DATA_DIR": str(base / "data"),
        "BIASAUDIT_LEASE_SECONDS": "3",
        "BIASAUDIT_MAX_ATTEMPTS": "3",
        "BIASAUDIT_RECONCILE_INTERVAL": "1",
        "BIASAUDIT_SCHEDULE_INTERVAL": "2",
        "BIASAUDIT_REQUEUE_AFTER": "2",
        "BIASAUDIT_TASK_SOFT_TIME_LIMIT": "100",
        "BIASAUDIT_TASK_TIME_LIMIT": "120",
        "BIASAUDIT_VISIBILITY_TIMEOUT": "150",
        "BIASAUDIT_SHARD_THRESHOLD_ROWS": "4000",
        "BIASAUDIT_SHARD_ROWS": "1500",
        OWNER_VAR: str(os.getpid()),
    }
    env.update(extra or {})
    return env


class Service:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.ready_line: str | None = None  # the log line that says it is ready
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith("BIASAUDIT_") or k == "PATH"
        }
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else, e.g. a traceback on stderr, is skipped)."""
        lines = []
        for line in self.log_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def wait_log(self, needle: str, *, timeout: float = READY_TIMEOUT) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}",
                    pytrace=False,
                )
            return needle in self.log_text()

        wait_for(seen, timeout=timeout, what=f"{self.name} to log {needle!r}")

    def wait_ready(self, *, timeout: float = READY_TIMEOUT) -> None:
        assert self.ready_line is not None, f"{self.name} logs no ready line"
        self.wait_log(self.ready_line, timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group (the worker and its pool processes)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 15.0) -> None:
        self.kill(signal.SIGTERM)
        self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 15.0) -> None:
        """After a SIGTERM: wait for the exit (SIGKILL after ``timeout``)."""
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(timeout=10)
        # pool processes left behind by a killed parent
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Stack:
    """Starts and stops the services of one environment (database + broker)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.services: list[Service] = []
        logs.mkdir(parents=True, exist_ok=True)
        Path(env["BIASAUDIT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)

    def _start(self, name: str, argv: list[str], extra: dict[str, str] | None = None) -> Service:
        service = Service(name, argv, {**self.env, **(extra or {})}, self.logs / f"{name}.log")
        self.services.append(service)
        return service

    def worker(
        self,
        name: str,
        *,
        queues: str = "cpu",
        concurrency: int = 1,
        extra: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Service:
        """A worker (with the tests' fault hooks); ``extra`` adds environment variables.

        ``wait=False`` returns as soon as the process is started: call
        ``service.wait_ready()`` before relying on it (start-ups then overlap)."""
        argv = [*HOOKED_WORKER, "worker", "--queues", queues]
        if "gpu" not in queues:
            argv += ["--concurrency", str(concurrency)]
        env = {"BIASAUDIT_WORKER_NAME": f"{name}@test", **(extra or {})}
        service = self._start(name, argv, env)
        service.ready_line = f"{name}@test ready."
        if wait:
            service.wait_ready()
        return service

    def beat(self, name: str = "beat", *, wait: bool = True) -> Service:
        service = self._start(name, [BIASAUDIT, "beat"], {"BIASAUDIT_WORKER_NAME": f"{name}@test"})
        service.ready_line = f"{name}@test ready."
        if wait:
            service.wait_ready()
        return service

    def api(self, name: str = "api", *, extra: dict[str, str] | None = None) -> tuple[Service, str]:
        """A started ``serve`` answering ``/healthz``, and its base URL."""
        service, base = self.launch_api(name, extra=extra)
        return self.wait_api(service, base)

    def launch_api(
        self, name: str = "api", *, extra: dict[str, str] | None = None
    ) -> tuple[Service, str]:
        """Start ``serve`` without waiting for it (start a worker meanwhile), then
        :meth:`wait_api`."""
        port = free_port()
        service = self._start(
            name, [BIASAUDIT, "serve", "--host", "127.0.0.1", "--port", str(port)], extra
        )
        return service, f"http://127.0.0.1:{port}"

    @staticmethod
    def wait_api(service: Service, base: str) -> tuple[Service, str]:
        def healthy() -> bool:
            if service.proc.poll() is not None:
                pytest.fail(f"{service.name} exited:\n{service.log_text()[-3000:]}", pytrace=False)
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=READY_TIMEOUT, what="the API to answer /healthz", step=0.05)
        return service, base

    def worker_and_api(
        self,
        name: str,
        api_name: str = "api",
        *,
        api_extra: dict[str, str] | None = None,
        **worker: Any,
    ) -> tuple[Service, str, Service]:
        """A worker (``worker`` as for :meth:`worker`) and an API, started side by side
        (each imports the engine for seconds): the API, its base URL, the worker."""
        api, base = self.launch_api(api_name, extra=api_extra)
        service = self.worker(name, **worker)
        return (*self.wait_api(api, base), service)

    def stop(self, service: Service) -> None:
        service.stop()
        if service in self.services:
            self.services.remove(service)

    def stop_many(self, services: list[Service]) -> None:
        """Stop ``services`` side by side (each warm shutdown takes a second or more)."""
        for service in services:
            service.kill(signal.SIGTERM)
        for service in services:
            service.wait_stopped()
            if service in self.services:
                self.services.remove(service)

    def stop_all(self) -> None:
        self.stop_many(list(reversed(self.services)))


@contextmanager
def private_database() -> Iterator[str]:
    """A migrated PostgreSQL database of its own (dropped afterwards).

    The integration stacks never share a database with other tests: their
    reconciler fails, cancels and re-publishes whatever it finds in it.
    """
    with scratch_database("biasaudit_it") as plain:
        url = sqlalchemy_url(plain)
        try:
            db.upgrade(url)
            yield url
        finally:
            db.dispose_engines()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shared environment (a private database, Redis db 14) with a running beat."""
    if stray := reap_orphans():
        print(f"killed {len(stray)} test service(s) left by an earlier, killed run: {stray}")
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    base = tmp_path_factory.mktemp("stack")
    with private_database() as url:
        shared = Stack(service_env(database_url=url, broker_url=REDIS_URL, base=base), base)
        try:
            shared.beat()
            yield shared
        finally:
            shared.stop_all()
            conn.flushdb()
            conn.close()


@pytest.fixture
def local(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The shared stack, with this test process configured like its services.

    Workers a test starts are stopped after it; the beat keeps running.
    """
    for key in [k for k in os.environ if k.startswith("BIASAUDIT_")]:
        if key != "BIASAUDIT_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    before = list(stack.services)
    try:
        yield stack
    finally:
        stack.stop_many([s for s in stack.services if s not in before])
        get_settings.cache_clear()


def redis_server(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A private redis-server without persistence (a restart loses every message)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    conn = redis.Redis(port=port)

    def up() -> bool:
        try:
            return bool(conn.ping())
        except redis.RedisError:
            return False

    wait_for(up, timeout=10, what=f"redis-server on port {port}")
    conn.close()
    return proc


# ---------------------------------------------------------------- data helpers


def api_client(base: str, *, database_url: str | None = None) -> httpx.Client:
    """An HTTP client for the API at ``base`` with a fresh submitter token of ``acme``."""
    with session_scope(database_url) as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def submit_pool(
    client: httpx.Client, folder: Path, *, description: str | None = None, n: int = 1200
) -> str:
    """Upload a hiring pool and submit an audit of it through the API; returns its id."""
    from tests.factories import spec_for, write_pool

    pool = write_pool(folder / f"pool-{secrets.token_hex(4)}.csv", n=n)
    upload = client.post("/v1/datasets", files={"file": (pool.name, pool.read_bytes(), "text/csv")})
    assert upload.status_code == 201, upload.text
    spec = spec_for(upload.json()["id"])
    if description:
        spec["description"] = description
    submitted = client.post("/v1/audits", json=spec)
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["id"])


from tests.workers.conftest import add_dataset  # noqa: E402,F401  (stored the API way)


def audit_state(audit_id: str) -> Any:
    with session_scope() as session:
        return repo.load_audit(session=session, audit_id=audit_id)


def wait_status(audit_id: str, statuses: set[str], *, timeout: float) -> Any:
    """The audit row once its status is one of ``statuses``; fails showing the last state."""
    last: list[Any] = [None]

    def done() -> Any:
        row = last[0] = audit_state(audit_id)
        return row if row is not None and row.status in statuses else None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = done()
        if row is not None:
            return row
        time.sleep(0.1)
    row = last[0]
    state = (
        "missing"
        if row is None
        else f"{row.status}, attempts {row.attempts}, worker {row.worker}, error {row.error}"
    )
    pytest.fail(
        f"audit {audit_id} not {sorted(statuses)} after {timeout:.0f} s: {state}", pytrace=False
    )


def messages_for(conn: redis.Redis, audit_id: str) -> int:
    """Messages of ``audit_id`` still in Redis: waiting in a queue or delivered, unacked."""
    from workers.reconcile import _message_audit_id

    count = 0
    for queue in ("cpu", "gpu"):
        count += sum(_message_audit_id(m) == audit_id for m in conn.lrange(queue, 0, -1))
    for raw in conn.hvals("unacked"):
        payload = json.loads(raw)[0]
        count += _message_audit_id(json.dumps(payload)) == audit_id
    return count
