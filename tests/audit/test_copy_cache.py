"""A worker machine's whole copies are bounded (BIASAUDIT_CACHE_BYTES): least recently
used copies are evicted, never one a process (this one or another) has in use."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.storage import cache
from audit.storage.objects import local_copy
from audit.storage.s3 import S3Store
from tests.s3_server import new_bucket, s3_client, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.services

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
time.sleep(60)
"""


def test_least_recently_used_copies_are_evicted_never_one_in_use(
    tmp_path: Path,
    s3_endpoint: str,  # noqa: F811
) -> None:
    store = S3Store(new_bucket(s3_endpoint), "p", s3_client(s3_endpoint))
    root = tmp_path / "data"
    bodies = {name: name.encode() * 25_000 for name in ("a", "b", "c", "d")}  # 25 kB each
    addresses = {n: store.put_bytes(f"acme/{n}.csv", b, "text/csv") for n, b in bodies.items()}

    def fetch(name: str, limit: int | None = 60_000) -> Path:
        sha = hashlib.sha256(bodies[name]).hexdigest()
        target = root / "acme" / f"{name}.csv"
        return local_copy(store, addresses[name], target, sha256=sha, cache=(root, limit))

    for name in ("a", "b"):
        fetch(name)
        time.sleep(0.01)  # distinct "last used" stamps
    cache.release_all()  # those tasks ended
    # another process is reading b (a shared lock held by a child process)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cache.lock_path(root / "acme" / "b.csv"))],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"held\n"
        fetch("c")  # 75 kB > 60 kB: a (least recently used, unused) goes; b is in use
        assert sorted(p.name for p in (root / "acme").glob("*.csv")) == ["b.csv", "c.csv"]
        fetch("d")  # c is pinned by this process's task, b by the child: both stay
        assert sorted(p.name for p in (root / "acme").glob("*.csv")) == [
            "b.csv",
            "c.csv",
            "d.csv",
        ]
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    cache.release_all()
    assert fetch("a").read_bytes() == bodies["a"]  # downloaded again, verified
    # now only a is in use; b, c, d are evicted oldest first until <= 60 kB
    left = sorted(p.name for p in (root / "acme").glob("*.csv"))
    assert left == ["a.csv", "d.csv"], left
    assert sum(size for _, _, size in cache.copies(root)) <= 60_000
    cache.release_all()
    # reuse refreshes the stamp: a copy used again is the last to go
    fetch("a", None)
    cache.release_all()
    assert [c.name for _, c, _ in cache.copies(root)] == ["d.csv", "a.csv"]
    assert not any(n.endswith(".tmp") for n in os.listdir(root / "acme"))


def test_a_pin_survives_an_eviction_race(tmp_path: Path) -> None:
    copy = tmp_path / "x.csv"
    copy.write_bytes(b"1" * 100)
    cache.pin(copy)
    assert cache.evict(tmp_path, 0) == []  # pinned: kept
    cache.release_all()
    assert cache.evict(tmp_path, 0) == [copy] and not copy.exists()
    assert not cache.lock_path(copy).exists()
    cache.pin(copy)  # a new lock file, the old one is gone
    assert cache.lock_path(copy).exists()
    cache.release_all()
