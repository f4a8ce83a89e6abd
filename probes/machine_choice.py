"""Decisions a machine makes once and every process on it then shares.

The CPU linear backend (:func:`probes.inference.pick_linear_backend`) is chosen by
timing both backends; two processes timing at once on a loaded machine can choose
differently, and the two backends round float32 differently (~1e-9 in a score). An
embedded ``biasaudit run`` and a worker on the same machine must give the same
document, so the first process to time a shape set writes its choice to
``$XDG_CACHE_HOME/biasaudit/machine-choices.json`` (``~/.cache`` by default) under
a file lock, and every later process (or a racing one, once it holds the lock)
reads it. The key names the CPU model and the torch version, so a new CPU or a
torch upgrade decides again. Delete the file to time again; when the folder cannot
be written the process keeps its own decision in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path

FILE_NAME = "machine-choices.json"


def choices_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "biasaudit" / FILE_NAME


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _read(path: Path) -> dict[str, bool]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, bool)} if isinstance(data, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Hold ``path``'s lock file; yields False (no lock) when the folder is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - closed below
    except OSError:
        yield False
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def decided_once(key: str, decide: Callable[[], bool]) -> bool:
    """The machine's decision for ``key``: read from the shared file, else ``decide()``
    (under the file lock, so racing processes agree) and written there."""
    path = choices_path()
    known = _read(path)
    if key in known:
        return known[key]
    with _locked(path) as locked:
        known = _read(path) if locked else {}
        if key in known:
            return known[key]
        choice = decide()
        if locked:
            known[key] = choice
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with contextlib.suppress(OSError):
                tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
                os.replace(tmp, path)
        return choice
