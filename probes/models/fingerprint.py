"""Content fingerprint of a model (results.json ``model.sha256``).

A single file hashes to its plain SHA-256 (what ``sha256sum`` prints). A folder
hashes its weights, config and tokenizer files: every file in sorted relative
POSIX-name order contributes ``name NUL size NUL contents`` to one SHA-256, read
in chunks so multi-gigabyte weights never sit in memory. Documentation and VCS
files (``README*``, ``*.md``, anything under a dot-named folder or dot-named file
such as ``.git``/``.gitattributes``/``.cache``) are skipped: editing a model card
does not change the model.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_CHUNK = 1 << 20
_memo: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_memo_lock = threading.Lock()


def _skipped(rel: Path) -> bool:
    if any(part.startswith(".") for part in rel.parts):
        return True
    name = rel.name.lower()
    return name.startswith("readme") or name.endswith(".md")


def model_files(path: Path) -> list[tuple[str, Path]]:
    """The (relative POSIX name, path) pairs a folder fingerprint covers, sorted by name."""
    out: list[tuple[str, Path]] = []
    for p in path.rglob("*"):
        rel = p.relative_to(path)
        if p.is_file() and not _skipped(rel):
            out.append((rel.as_posix(), p))
    out.sort(key=lambda item: item[0])
    return out


def _update_from_file(h: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)


def fingerprint(path: Path) -> str:
    """SHA-256 hex digest of a model file or folder (see the module docstring).

    Results are memoised per process on (path, file names, sizes, mtimes), so a
    model loaded again by a long-lived worker is not re-read.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> fingerprint(d) == fingerprint(d)
    True
    """
    path = Path(path)
    if path.is_file():
        h = hashlib.sha256()
        _update_from_file(h, path)
        return h.hexdigest()
    if not path.is_dir():
        raise FileNotFoundError(f"model.path: {path} is neither a file nor a folder")
    files = model_files(path)
    stats = tuple((name, (st := p.stat()).st_size, st.st_mtime_ns) for name, p in files)
    key = (str(path.resolve()), stats)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    h = hashlib.sha256()
    for (name, p), (_, size, _mtime) in zip(files, stats, strict=True):
        h.update(name.encode("utf-8") + b"\0" + str(size).encode() + b"\0")
        _update_from_file(h, p)
    digest = h.hexdigest()
    with _memo_lock:
        if len(_memo) > 64:
            _memo.clear()
        _memo[key] = digest
    return digest
