"""Stored reports: rendered once when the results are stored, streamed on every read.

A report is kept gzip-compressed in pieces (``report_chunks``) of at most
``REPORT_CHUNK_BYTES``; :func:`iter_report` yields it piece by piece, so
serving a report costs one piece of memory per reader however large it is,
and a client that accepts gzip gets the stored bytes as they are. One row per
(audit, format): HTML today, any other format (PDF) through the same calls.

Files an audit produced (lda-search's ``lda-best-<attribute>.skops``) are kept
the same way, under the format ``file:<name>`` (:func:`store_artifact`,
:func:`get_artifact`, :func:`list_artifacts`): stored in the results'
transaction, streamed by :func:`iter_report`, never dropped with the reports.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from audit.storage.accounts import insert_ignore
from audit.storage.models import Audit, Report, ReportChunk, utcnow

REPORT_CHUNK_BYTES = 256 * 1024  # compressed bytes per stored piece (and decompressed)
GZIP_LEVEL = 6
_GZIP_WBITS = 31  # zlib: gzip header and trailer
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
ARTIFACT_PREFIX = "file:"  # the format of a file the audit produced
ARTIFACT_MEDIA_TYPE = "application/octet-stream"
#: a bare file name: letters, digits, ``_ . -``, not starting with a dot, at most 200
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
MSG_ARTIFACT_NAME = (
    "name: {name!r} is not a file name an audit produces (letters, digits, '_', '.', '-'; "
    "not starting with '.'; at most 200 characters)"
)


@dataclass(frozen=True)
class StoredReport:
    """What a reader needs before streaming: the row id, type, sizes and checksum."""

    id: int
    audit_id: str
    format: str
    media_type: str
    encoding: str
    size_bytes: int
    stored_bytes: int
    sha256: str
    chunks: int


def _pieces(content: bytes) -> tuple[list[bytes], int]:
    """The gzip stream of ``content`` cut into pieces; and its total length."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    out = bytearray()
    pieces: list[bytes] = []
    step = 8 * REPORT_CHUNK_BYTES
    for start in range(0, len(content), step):
        out += compressor.compress(content[start : start + step])
        while len(out) >= REPORT_CHUNK_BYTES:
            pieces.append(bytes(out[:REPORT_CHUNK_BYTES]))
            del out[:REPORT_CHUNK_BYTES]
    out += compressor.flush()
    for start in range(0, len(out), REPORT_CHUNK_BYTES):
        pieces.append(bytes(out[start : start + REPORT_CHUNK_BYTES]))
    return pieces, sum(len(p) for p in pieces)


def store_report(
    *,
    session: Session,
    audit_id: str,
    format: str,
    content: bytes | str,
    media_type: str | None = None,
) -> bool:
    """Store an audit's rendered report in ``format`` (in the caller's transaction).

    Returns False and writes nothing when the audit already has one in that
    format (a duplicate delivery, or two readers rendering a legacy report).
    """
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    pieces, stored = _pieces(data)
    report_id = session.execute(
        insert_ignore(session, Report, index_elements=["audit_id", "format"])
        .values(
            audit_id=audit_id,
            format=format,
            media_type=media_type or MEDIA_TYPES.get(format, "application/octet-stream"),
            encoding="gzip",
            size_bytes=len(data),
            stored_bytes=stored,
            sha256=hashlib.sha256(data).hexdigest(),
            chunks=len(pieces),
            created_at=utcnow(),
        )
        .returning(Report.id)
    ).scalar_one_or_none()
    if report_id is None:
        return False
    for seq, piece in enumerate(pieces):  # one row per statement: bounded parameters
        session.execute(insert(ReportChunk).values(report_id=report_id, seq=seq, data=piece))
    return True


def get_report(
    *, session: Session, project: str, audit_id: str, format: str
) -> StoredReport | None:
    """The stored report of a project's audit in ``format`` (no content), or None."""
    row = session.execute(
        select(Report)
        .join(Audit, Audit.id == Report.audit_id)
        .where(Report.audit_id == audit_id, Report.format == format, Audit.project == project)
    ).scalar_one_or_none()
    return None if row is None else _stored(row)


def _stored(row: Report) -> StoredReport:
    return StoredReport(
        id=row.id,
        audit_id=row.audit_id,
        format=row.format,
        media_type=row.media_type,
        encoding=row.encoding,
        size_bytes=row.size_bytes,
        stored_bytes=row.stored_bytes,
        sha256=row.sha256,
        chunks=row.chunks,
    )


def read_chunk(*, session: Session, report_id: int, seq: int) -> bytes:
    """One stored piece of a report (compressed bytes)."""
    data = session.scalar(
        select(ReportChunk.data).where(ReportChunk.report_id == report_id, ReportChunk.seq == seq)
    )
    if data is None:
        raise LookupError(f"report {report_id}: piece {seq} is missing")
    return bytes(data)


def iter_report(
    report: StoredReport, *, url: str | None = None, decompress: bool = True
) -> Iterator[bytes]:
    """The report's bytes, one piece at a time, each read in a short session of its own.

    With ``decompress=False`` the stored gzip stream is yielded as it is (for a
    client that accepts ``Content-Encoding: gzip``). Memory stays at one piece
    (decompressed pieces are cut at ``REPORT_CHUNK_BYTES`` too).
    """
    from audit.storage.db import session_scope

    inflater = zlib.decompressobj(_GZIP_WBITS) if decompress else None
    for seq in range(report.chunks):
        with session_scope(url) as session:
            data = read_chunk(session=session, report_id=report.id, seq=seq)
        if inflater is None:
            yield data
            continue
        while data:
            piece = inflater.decompress(data, REPORT_CHUNK_BYTES)
            data = inflater.unconsumed_tail
            if piece:
                yield piece
    if inflater is not None:
        tail = inflater.flush()
        if tail:
            yield tail


def valid_artifact_name(name: str) -> bool:
    """True when ``name`` is a bare file name (no folder, no leading dot)."""
    return ARTIFACT_NAME.fullmatch(name) is not None


def store_artifact(*, session: Session, audit_id: str, name: str, content: bytes) -> bool:
    """Store a file the audit produced (in the caller's transaction); False if already stored."""
    if not valid_artifact_name(name):
        raise ValueError(MSG_ARTIFACT_NAME.format(name=name))
    return store_report(
        session=session,
        audit_id=audit_id,
        format=ARTIFACT_PREFIX + name,
        content=content,
        media_type=ARTIFACT_MEDIA_TYPE,
    )


def get_artifact(
    *, session: Session, project: str, audit_id: str, name: str
) -> StoredReport | None:
    """A project's audit's stored file ``name`` (no content), or None."""
    if not valid_artifact_name(name):
        return None
    return get_report(
        session=session, project=project, audit_id=audit_id, format=ARTIFACT_PREFIX + name
    )


def list_artifacts(*, session: Session, project: str, audit_id: str) -> list[StoredReport]:
    """The files a project's audit produced, by name."""
    rows = session.scalars(
        select(Report)
        .join(Audit, Audit.id == Report.audit_id)
        .where(
            Report.audit_id == audit_id,
            Audit.project == project,
            Report.format.startswith(ARTIFACT_PREFIX, autoescape=True),
        )
        .order_by(Report.format)
    ).all()
    return [_stored(row) for row in rows]


def artifact_name(stored: StoredReport) -> str:
    return stored.format.removeprefix(ARTIFACT_PREFIX)


def _utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC (SQLite hands back naive datetimes; they were stored as UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def report_reviews(*, session: Session, project: str, audit_id: str) -> list[dict[str, Any]]:
    """A project's audit's reviews as the report renderers take them, oldest first:
    ``{decision, reviewer, comment, created_at}`` (reviewer: the name recorded, else the token)."""
    from audit.storage.audits import list_reviews

    return [
        {
            "decision": r.decision,
            "reviewer": r.reviewer or (f"token {r.token_id}" if r.token_id else None),
            "comment": r.comment,
            "created_at": _utc(r.created_at),
        }
        for r in list_reviews(session=session, project=project, audit_id=audit_id)
    ]
