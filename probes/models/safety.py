"""Refuse model files whose loading would run arbitrary code, and confine paths.

Pickle (and everything built on it: joblib, ``torch.save`` files, most ``.bin``
checkpoints) executes code named inside the file while loading it, so a model
file from someone else is a remote-code-execution vector. We detect such files
**without unpickling them**, by extension and by content:

- a pickle stream of protocol 2-5 starts with the PROTO opcode ``\\x80`` and
  the protocol number;
- protocol 0/1 streams (the classic ``cos\\nsystem\\n`` exploit) are recognised by
  parsing opcodes with :func:`pickletools.genops`, which reads but never executes;
- zip archives (``torch.save`` since 1.6) holding a ``*.pkl`` member;
- compressed streams (joblib's zlib/gzip/bz2/xz/lzma) whose first decompressed
  bytes look like a pickle.

A detected file is refused with :data:`PICKLE_REFUSED` unless the spec says
``model.trusted: true``. :func:`resolve_within` keeps API-supplied paths inside a
configured root folder.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import zipfile
import zlib
from pathlib import Path

from probes.base import ProbeError

# Same text as audit.errors.MSG_PICKLE_REFUSED (probes must not import audit, and
# audit.errors must not import the probes: tests/probes/test_model_safety.py compares them).
PICKLE_REFUSED = (
    "model.path: {path} is a pickle/joblib file; unpickling runs arbitrary code, so it is "
    "refused. Save the model with skops (.skops), or set model.trusted: true if you "
    "created this file yourself"
)
PATH_ESCAPE = "{field}: {path} is outside the allowed folder {root}; use a path inside it"

PICKLE_EXTENSIONS = frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin"})
_SNIFF_BYTES = 1 << 16
# Opcodes that import or call something: a stream using them can run code.
_CODE_OPS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"})


class ModelLoadError(ProbeError):
    """The model could not be loaded; the message names ``model.*`` and what is valid."""


class UnsafeModelError(ModelLoadError):
    """The model file would run code when loaded (pickle) or lies outside its folder."""


def _looks_like_pickle_bytes(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    # Protocol 0/1: parse opcodes (never executes). A pickle that can run code
    # must import something, so require an import/call opcode; plain text files
    # fail to parse long before that.
    seen_code = False
    try:
        for op, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            if op.name in _CODE_OPS:
                seen_code = True
            if op.name == "STOP":
                return seen_code
    except Exception:  # noqa: BLE001 - any parse failure: truncated sniff or not a pickle
        return seen_code and len(head) >= _SNIFF_BYTES
    return False


def _decompressed_head(head: bytes, path: Path) -> bytes | None:
    """First bytes of a zlib/gzip/bz2/xz/lzma stream (joblib's compressors), else None."""
    try:
        if head[:2] == b"\x1f\x8b":
            import gzip

            with gzip.open(path, "rb") as fh:
                return fh.read(_SNIFF_BYTES)
        if head[:3] == b"BZh":
            with bz2.open(path, "rb") as fh:
                return fh.read(_SNIFF_BYTES)
        if head[:6] == b"\xfd7zXZ\x00" or head[:3] == b"\x5d\x00\x00":
            with lzma.open(path, "rb") as fh:
                return fh.read(_SNIFF_BYTES)
        if head[:1] == b"\x78" and head[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
            return zlib.decompressobj().decompress(head, _SNIFF_BYTES)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):
        return None
    return None


def pickle_reason(path: Path) -> str | None:
    """Why ``path`` is pickle-based (``"extension .pt"``, ``"pickle content"`` ...), or None.

    Reads at most 64 KiB (plus a zip directory); never unpickles anything.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_EXTENSIONS:
        return f"extension {path.suffix.lower()}"
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if _looks_like_pickle_bytes(head):
        return "pickle content"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        pkl = [n for n in names if n.lower().endswith((".pkl", ".pickle"))]
        return f"zip archive holding {pkl[0]}" if pkl else None
    inner = _decompressed_head(head, path)
    if inner is not None and _looks_like_pickle_bytes(inner):
        return "compressed pickle content"
    return None


def is_pickle_file(path: Path) -> bool:
    """True when loading ``path`` would unpickle (by extension or content)."""
    return pickle_reason(path) is not None


def check_not_pickle(path: Path, *, trusted: bool) -> None:
    """Raise :class:`UnsafeModelError` (:data:`PICKLE_REFUSED`) for a pickle file unless trusted."""
    if not trusted and is_pickle_file(path):
        raise UnsafeModelError(PICKLE_REFUSED.format(path=path))


def pickle_files_in(folder: Path) -> list[Path]:
    """Every pickle-based file under ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_pickle_file(p))


def resolve_within(path: str | Path, root: str | Path, *, field: str = "model.path") -> Path:
    """Resolve ``path`` (relative to ``root``) and refuse it if it ends up outside ``root``.

    ``..`` components, absolute paths and symlinks are all followed first
    (:meth:`Path.resolve`), so none of them can escape: only the final, real
    location is compared with the real ``root``. An absolute path inside ``root``
    is accepted.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> resolve_within("models/a.skops", root) == root.resolve() / "models" / "a.skops"
    True
    """
    real_root = Path(root).resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = real_root / candidate
    real = candidate.resolve()
    if not real.is_relative_to(real_root):
        raise UnsafeModelError(PATH_ESCAPE.format(field=field, path=path, root=real_root))
    return real
