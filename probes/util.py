"""Small helpers shared by probes and the product (file hashes, label form, JSON floats)."""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

# digests verified in this process (remember_sha256), by resolved path, with the file's
# (device, inode, size, mtime in ns) at the time
_verified: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_verified_lock = threading.Lock()
VERIFIED_MAX = 256  # paths remembered at most (a long-lived worker's distinct downloads)


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def remember_sha256(path: Path, digest: str) -> None:
    """``path`` was verified just now to hash to ``digest`` (a download checked against
    the SHA-256 its upload recorded): :func:`file_sha256` returns ``digest`` without
    reading the file again while it keeps its device, inode, size and mtime."""
    key = str(Path(path).resolve())
    with _verified_lock:
        if len(_verified) >= VERIFIED_MAX:
            _verified.clear()
        _verified[key] = (_identity(path), digest)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks; a digest this process verified for the
    unchanged file (:func:`remember_sha256`) is not computed again."""
    known = _verified.get(str(Path(path).resolve()))
    if known is not None and known[0] == _identity(path):
        return known[1]
    return hash_file(path)


def hash_file(path: Path) -> str:
    """SHA-256 of the file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def canonical_label(value: Any) -> str:
    """Label text for comparisons: 1 == "1" == 1.0 == True == "true" ."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return "1" if text.lower() == "true" else "0"
    try:
        f = float(text)
    except ValueError:
        return text
    return str(int(f)) if f.is_integer() else repr(f)


def finite_or_none(x: Any) -> float | None:
    """A JSON-safe float: None, NaN and infinities become None (an undefined value)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x
