"""A stored object read by ranged GETs: a shard reads its own bytes, not the whole file.

:class:`StoredFile` stands for the local :class:`~pathlib.Path` of a dataset in the
engine's reader (:mod:`audit.engine.reader`): it has the ``name``, ``suffixes``,
``stat()``, ``is_file()`` and ``open("rb")`` the reader uses, and ``open`` answers a
:class:`RangedReader`: a seekable, read-only binary file over
``store.read_range``, which ``pyarrow.parquet.ParquetFile`` (footer, then the
column chunks of the shard's row groups) and the CSV reader (a shard's byte range)
consume like a local file.

Read-ahead is sequential only, as an operating system's: a read that continues
where the previous one ended fetches ahead a window that doubles with each such
read, from 64 KiB up to ``block`` (``BIASAUDIT_RANGE_BLOCK_BYTES``, 4 MiB by default) but never
more than half of what was read in sequence so far, nor past ``horizon`` (a CSV
shard's last byte); a read elsewhere (a Parquet
column chunk) fetches just what it asks (at least 64 KiB). So a shard fetches at
most about 1.5x its bytes plus the footer, in requests of up to a few MiB.

Integrity: a whole copy is verified by SHA-256 (:func:`audit.storage.objects.local_copy`);
ranges cannot be. Each ranged GET is therefore pinned to the ETag (and size) the
registration recorded (``If-Match``): an object replaced in the store since then
fails the audit with :data:`MSG_REPLACED`, naming ``dataset.id``, instead of mixing
bytes of two versions.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Any

from audit.errors import AuditInputError
from audit.storage.objects import MSG_MISSING, ObjectMissing, ObjectReplaced, ObjectStore

MIN_FETCH = 64 << 10
BLOCK = 4 << 20
MSG_REPLACED = (
    "{field}: the stored object {key} was replaced in the object store after it was "
    "registered (ETag {expected}, now {actual}); its bytes are no longer the ones whose "
    "SHA-256 was checked. Upload it again"
)


@dataclass
class RangeStats:
    """What ranged reads cost: GET requests and bytes fetched (all readers of one file)."""

    requests: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += nbytes


class QuoteWatch:
    """The quote parity of bytes ``[start, stop)`` as readers deliver them, in order.

    A CSV shard planned from cuts near each target (no pass from the file's start)
    checks that its own range holds an even number of ``"``: then, its start being a
    record start, so is its end (a line break outside quotes). Every shard checking
    its range proves every cut, from the first (found by a scan from byte 0)."""

    def __init__(self, start: int, stop: int) -> None:
        self.pos, self.stop, self.quotes = start, stop, 0

    def seen(self, at: int, data: bytes, offset: int, length: int) -> None:
        """``data[offset : offset + length]`` are the object's bytes from ``at``."""
        if at <= self.pos < at + length and self.pos < self.stop:
            end = min(at + length, self.stop)
            self.quotes += data.count(b'"', offset + self.pos - at, offset + end - at)
            self.pos = end

    @property
    def complete(self) -> bool:
        return self.pos >= self.stop

    @property
    def balanced(self) -> bool:
        return self.quotes % 2 == 0


class RangedReader(io.RawIOBase):
    """Bytes of one stored object, seekable; fetched by ranges with sequential read-ahead."""

    def __init__(self, source: StoredFile, block: int = BLOCK) -> None:
        self._src = source
        self._size = source.size
        self._block = max(block, MIN_FETCH)
        self._pos = 0
        self._buf = b""  # bytes [_buf_at, _buf_at + len(_buf)) of the object
        self._buf_at = 0
        self._run = 0  # bytes read in sequence up to _pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._run = 0
        self._pos = target
        return self._pos

    def size(self) -> int:  # pyarrow asks a Python file for its size this way
        return self._size

    def _fetch(self, want: int) -> None:
        """Fill the buffer from ``_pos``: ``want`` bytes, plus read-ahead in a sequence."""
        ahead = min(self._block, max(MIN_FETCH, self._run // 2)) if self._run else MIN_FETCH
        stop = min(self._size, self._pos + max(want, ahead))
        horizon = self._src.horizon  # a CSV shard's end: read-ahead stops there
        if horizon is not None and self._pos < horizon:
            stop = min(stop, max(horizon, self._pos + want))
        self._buf = self._src.read_range(self._pos, stop)
        self._buf_at = self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        start = self._pos - self._buf_at
        if not (0 <= start and self._pos + want <= self._buf_at + len(self._buf)):
            if 0 <= start < len(self._buf):  # the buffer holds the beginning: serve it first
                want = len(self._buf) - start
            else:
                self._fetch(want)
                start = 0
        view[:want] = self._buf[start : start + want]
        if self._src.watch is not None:
            self._src.watch.seen(self._pos, self._buf, start, want)
        self._pos += want
        self._run += want
        return want

    def readall(self) -> bytes:
        return self.read(self._size - self._pos)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        out = bytearray(min(size, max(0, self._size - self._pos)))
        got = 0
        while got < len(out):
            n = self.readinto(memoryview(out)[got:])
            if n == 0:
                break
            got += n
        return bytes(out[:got])


@dataclass(frozen=True)
class _Stat:
    st_size: int


class StoredFile:
    """A stored dataset as the reader sees a local file, read by pinned ranged GETs.

    ``name`` is the object's file name (``<id>.csv``: what messages and results name);
    ``etag`` and ``size`` are the registration's. ``stats`` counts every fetch.
    """

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        *,
        size: int,
        etag: str,
        sha256: str,
        field: str = "dataset.id",
        block: int = BLOCK,
    ) -> None:
        self.store, self.key, self.size, self.etag = store, key, size, etag
        self.sha256, self.field, self.block = sha256, field, block
        self.name = key.rsplit("/", 1)[-1]
        self.stats = RangeStats()
        self.watch: QuoteWatch | None = None
        self.columnar: StoredFile | None = None  # an upload's columnar copy, also by ranges
        self.horizon: int | None = None  # no read-ahead past this byte (a shard's end)
        # the file's first and last bytes, fetched once: every reader of this file asks
        # for the CSV header, or the Parquet footer, again
        self._kept: list[tuple[int, bytes]] = []

    @property
    def suffixes(self) -> list[str]:
        stem = self.name.lstrip(".")
        return ["." + s for s in stem.split(".")[1:]]

    @property
    def suffix(self) -> str:
        return (self.suffixes or [""])[-1]

    def __str__(self) -> str:
        return self.name

    def __fspath__(self) -> str:  # never opened as a local file by mistake
        raise TypeError(f"{self.name} is a stored object read by ranges, not a local file")

    def stat(self) -> _Stat:
        return _Stat(self.size)

    def is_file(self) -> bool:
        return True

    def exists(self) -> bool:
        return True

    def open(self, mode: str = "rb") -> RangedReader:
        if mode != "rb":
            raise ValueError(f"{self.name}: a stored object is read-only (mode {mode!r})")
        return RangedReader(self, self.block)

    def read_range(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``, pinned to the registered ETag; counted in ``stats``.

        A read from the first byte or to the last is kept: the next reader of the header
        (CSV) or the footer (Parquet) gets it from memory."""
        for at, kept in self._kept:
            if at <= start and stop <= at + len(kept):
                return kept[start - at : stop - at]
        try:
            data = self.store.read_range(self.key, start, stop, etag=self.etag)
        except ObjectReplaced:
            raise self._replaced(self._current_etag()) from None
        except ObjectMissing:
            message = MSG_MISSING.format(field=self.field, key=self.key)
            raise AuditInputError(message, field=self.field) from None
        self.stats.add(len(data))
        if (start == 0 or stop == self.size) and len(self._kept) < 4 and len(data) <= 1 << 20:
            self._kept.append((start, data))
        return data

    def _current_etag(self) -> str:
        try:
            return self.store.head(self.key).etag
        except ObjectMissing:
            return "none: deleted"

    def _replaced(self, actual: str) -> AuditInputError:
        message = MSG_REPLACED.format(
            field=self.field, key=self.key, expected=self.etag, actual=actual
        )
        return AuditInputError(message, field=self.field)

    def check(self) -> StoredFile:
        """HEAD the object: still the registered version (ETag and size)? Else an input error."""
        try:
            info = self.store.head(self.key)
        except ObjectMissing:
            message = MSG_MISSING.format(field=self.field, key=self.key)
            raise AuditInputError(message, field=self.field) from None
        if info.etag != self.etag or info.size != self.size:
            raise self._replaced(info.etag)
        return self
