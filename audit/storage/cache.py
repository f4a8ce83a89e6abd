"""A worker machine's copies of stored objects, bounded by ``BIASAUDIT_CACHE_BYTES``.

Whole copies (:func:`audit.storage.objects.local_copy`) stay where a local upload
would be, so that the next audit of the same dataset or model on this machine
downloads nothing. With ``BIASAUDIT_CACHE_BYTES`` set, the least recently used
copies are deleted once their total is above it, never one in use:

- every copy ``X`` has a lock file ``.X.copy.lock`` beside it; a process using the
  copy holds a shared ``flock`` on it (:func:`pin`) until its task ends
  (:func:`release_all`), and touches it (its mtime is the "last used" time);
- eviction (:func:`evict`) takes an exclusive, non-blocking ``flock``: a copy any
  process (this one included) has pinned is skipped; one it gets is deleted, then its
  lock file is unlinked while still held. A process that opened that lock file just
  before sees, once it has its shared lock, that the path no longer names the file
  it locked and starts again with a new lock file (then a fresh download).

``flock`` locks are per machine and per open file, released by the kernel when a
process dies, so a crashed worker never leaves a copy pinned. A copy over the bound
by itself is kept while in use and evicted by the next download after it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("biasaudit.storage")
SUFFIX = ".copy.lock"
_HELD: dict[Path, int] = {}


def lock_path(copy: Path) -> Path:
    return copy.with_name(f".{copy.name}{SUFFIX}")


def pin(copy: Path) -> None:
    """Hold a shared lock on ``copy``'s lock file (kept until :func:`release_all`),
    stamped now; the copy itself may not exist yet (the caller downloads it)."""
    if copy in _HELD:
        os.utime(_HELD[copy])
        return
    lock = lock_path(copy)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # evicted between open and lock: lock the new file
    os.utime(fd)
    _HELD[copy] = fd


def release_all() -> None:
    """Unpin every copy this process pinned (at the end of a task)."""
    while _HELD:
        _, fd = _HELD.popitem()
        os.close(fd)


def _size(copy: Path) -> int:
    if copy.is_dir():
        return sum(p.stat().st_size for p in copy.rglob("*") if p.is_file())
    return copy.stat().st_size if copy.exists() else 0


def copies(root: Path) -> list[tuple[float, Path, int]]:
    """(last used, copy, bytes) of every copy under ``root``, least recently used first."""
    found = []
    for lock in root.rglob(f".*{SUFFIX}"):
        copy = lock.with_name(lock.name[1 : -len(SUFFIX)])
        try:
            found.append((lock.stat().st_mtime, copy, _size(copy)))
        except FileNotFoundError:  # evicted meanwhile
            continue
    return sorted(found, key=lambda item: (item[0], str(item[1])))


def _delete_unused(copy: Path) -> bool:
    lock = lock_path(copy)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # pinned by a process: in use
        os.close(fd)
        return False
    try:
        if os.stat(lock).st_ino != os.fstat(fd).st_ino:
            return False
        shutil.rmtree(copy, ignore_errors=True) if copy.is_dir() else copy.unlink(missing_ok=True)
        lock.unlink()
        return True
    finally:
        os.close(fd)


def evict(root: Path, limit: int) -> list[Path]:
    """Delete unused copies under ``root``, least recently used first, until their total
    is at most ``limit`` bytes; the copies deleted."""
    listed = copies(root)
    total = sum(size for _, _, size in listed)
    gone: list[Path] = []
    for _, copy, size in listed:
        if total <= limit:
            break
        if _delete_unused(copy):
            total -= size
            gone.append(copy)
            log.info("cache: evicted %s (%d bytes)", copy.name, size)
    return gone
