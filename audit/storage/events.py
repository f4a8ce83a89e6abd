"""The append-only, hash-chained event log, and its verification.

Every entry holds the SHA-256 of the entry before it (``prev_sha256``; the
first entry's is 64 zeros) and its own ``sha256`` over its canonical JSON
(seq, time, project, actor, action, subject, audit id, result hash, detail,
prev_sha256). An "audit finished" entry also holds the SHA-256 of the stored
results document (:func:`result_sha256`). Editing, inserting or removing an
entry breaks the chain at that entry; editing a stored result breaks its
hash. :func:`verify_log` finds both.

Appends are serialised by the one-row ``event_head`` table: the appender
updates it first (a row lock on PostgreSQL, the database write lock on
SQLite) and holds it until its transaction commits. Append at the *end* of a
transaction: the head is then the last lock taken, so no lock cycle can form.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from audit.storage.accounts import insert_ignore
from audit.storage.models import Audit, Event, EventHead, Result, utcnow

GENESIS = "0" * 64
HEAD_ID = 1
ACTIONS = (
    "audit.submitted",
    "audit.started",
    "audit.finished",
    "audit.failed",
    "audit.cancelled",
    "audit.reviewed",
    "schedule.created",
    "schedule.changed",
    "schedule.fired",
    "alert.raised",
    "key.created",
    "key.revoked",
    "dataset.deleted",
    "model.deleted",
)
MAX_EVENT_PAGE = 1000
_VERIFY_BATCH = 1000


def local_actor() -> str:
    """Who acts from the command line or an embedded run: ``cli <os user>``."""
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, strict floats: the bytes every hash here is taken over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def result_sha256(document: dict[str, Any]) -> str:
    """SHA-256 of a results document as stored (JSON round trip, canonical form).

    The same value whether the document was just computed or read back from
    PostgreSQL's ``jsonb`` (which reorders keys) or SQLite's JSON text.
    """
    return hashlib.sha256(canonical_json(json.loads(canonical_json(document)))).hexdigest()


def _at(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def entry_sha256(
    *,
    seq: int,
    at: datetime,
    project: str | None,
    actor: str,
    action: str,
    subject: str,
    audit_id: str | None,
    result_sha256: str | None,
    detail: Any,
    prev_sha256: str,
) -> str:
    """The hash of one entry over its canonical JSON (what :func:`verify_log` recomputes)."""
    body = {
        "seq": seq,
        "at": _at(at),
        "project": project,
        "actor": actor,
        "action": action,
        "subject": subject,
        "audit_id": audit_id,
        "result_sha256": result_sha256,
        "detail": detail,
        "prev_sha256": prev_sha256,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


# Core statements, built once: no ORM bulk machinery on the submission path.
_HEAD = cast(Table, EventHead.__table__)
_TAKE_HEAD = (
    # A write that returns the current values: one round trip takes the lock and reads.
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(seq=_HEAD.c.seq)
    .returning(_HEAD.c.seq, _HEAD.c.sha256)
)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), sha256=bindparam("new_sha256"))
)
_INSERT_EVENTS = insert(cast(Table, Event.__table__))


def _lock_head(session: Session) -> tuple[int, str]:
    """Take the chain's head (created on first use) and return (last seq, its hash)."""
    head = session.connection().execute(_TAKE_HEAD).first()
    if head is None:  # a new database (or emptied tables): create the head, then take it
        session.execute(
            insert_ignore(session, EventHead, index_elements=["id"]).values(
                id=HEAD_ID, seq=0, sha256=GENESIS
            )
        )
        head = session.connection().execute(_TAKE_HEAD).one()
    return int(head.seq), str(head.sha256)


def append_event(
    *,
    session: Session,
    action: str,
    actor: str,
    subject: str,
    project: str | None = None,
    audit_id: str | None = None,
    result_sha256: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one entry to the log in the caller's transaction (call it last; see module doc).

    Returns the entry's columns (with ``seq`` and ``sha256``)."""
    return append_events(
        session=session,
        entries=[
            {
                "action": action,
                "actor": actor,
                "subject": subject,
                "project": project,
                "audit_id": audit_id,
                "result_sha256": result_sha256,
                "detail": detail,
            }
        ],
    )[0]


def append_events(*, session: Session, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append several entries, in order, under one lock of the head (a batch of submissions).

    Each entry is a dict with ``action``, ``actor``, ``subject`` and optionally
    ``project``, ``audit_id``, ``result_sha256``, ``detail``.
    """
    if not entries:
        return []
    seq, prev = _lock_head(session)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry["action"] not in ACTIONS:
            raise ValueError(
                f"action: must be one of {', '.join(ACTIONS)}, got {entry['action']!r}"
            )
        seq += 1
        values = {
            "seq": seq,
            "at": now,
            "project": entry.get("project"),
            "actor": str(entry["actor"])[:200],
            "action": entry["action"],
            "subject": entry["subject"],
            "audit_id": entry.get("audit_id"),
            "result_sha256": entry.get("result_sha256"),
            "detail": entry.get("detail"),
            "prev_sha256": prev,
        }
        values["sha256"] = prev = entry_sha256(**values)
        rows.append(values)
    _write(session, rows, seq, prev)
    return rows


def _write(session: Session, rows: list[dict[str, Any]], seq: int, sha256: str) -> None:
    """Insert the entries (one executemany) and move the head.

    (A single PostgreSQL statement, the insert as a CTE of the head's update, was
    slower: its multi-row VALUES is compiled anew for every batch.)"""
    connection = session.connection()  # Core on the connection: no ORM execute path
    connection.execute(_INSERT_EVENTS, rows)
    connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_sha256": sha256})


def list_events(
    *,
    session: Session,
    project: str,
    audit_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Event], int]:
    """One page of a project's entries, newest first, and the total matching."""
    if not 1 <= limit <= MAX_EVENT_PAGE:
        raise ValueError(f"limit: must be between 1 and {MAX_EVENT_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset: must be >= 0, got {offset}")
    conditions = [Event.project == project]
    if audit_id is not None:
        conditions.append(Event.audit_id == audit_id)
    total = session.scalar(select(func.count()).select_from(Event).where(*conditions)) or 0
    rows = session.scalars(
        select(Event).where(*conditions).order_by(Event.seq.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), int(total)


def event_dict(event: Event) -> dict[str, Any]:
    """An entry as the API and the CLI show it."""
    return {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "audit_id": event.audit_id,
        "result_sha256": event.result_sha256,
        "detail": event.detail,
        "sha256": event.sha256,
        "prev_sha256": event.prev_sha256,
    }


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class Break:
    """The first thing found wrong: the entry's ``seq`` (None for a result with no entry)."""

    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "results"
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_log` checked, and the breaks it found (in log order)."""

    entries: int
    results: int
    breaks: list[Break]

    @property
    def intact(self) -> bool:
        return not self.breaks


def _entries(session: Session) -> Iterator[Event]:
    last = 0
    while True:
        batch = session.scalars(
            select(Event).where(Event.seq > last).order_by(Event.seq).limit(_VERIFY_BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].seq
        session.expunge_all()


def _check_entry(event: Event, expected_seq: int, prev: str) -> Break | None:
    if event.seq != expected_seq:
        return Break(event.seq, f"sequence gap: expected {expected_seq} (an entry was removed)")
    if event.prev_sha256 != prev:
        return Break(
            event.seq,
            f"prev_sha256 {event.prev_sha256} is not the hash of entry {expected_seq - 1} "
            f"({prev}): an entry before it was edited or replaced",
        )
    recomputed = entry_sha256(
        seq=event.seq,
        at=event.at,
        project=event.project,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        audit_id=event.audit_id,
        result_sha256=event.result_sha256,
        detail=event.detail,
        prev_sha256=event.prev_sha256,
    )
    if recomputed != event.sha256:
        return Break(
            event.seq,
            f"{event.action} {event.subject}: the entry was edited "
            f"(stored sha256 {event.sha256}, recomputed {recomputed})",
        )
    return None


def verify_log(*, session: Session) -> Verification:
    """Check the whole chain and recompute every stored result's hash.

    A result must match the hash in its audit's "audit.finished" entry, and
    every stored result must have one. The head must name the last entry (a
    removed tail is caught there). Reads in batches: memory stays bounded.
    """
    breaks: list[Break] = []
    finished: dict[str, tuple[int, str]] = {}
    prev, expected, count = GENESIS, 1, 0
    chain_ok = True
    for event in _entries(session):
        count += 1
        if chain_ok:
            broken = _check_entry(event, expected, prev)
            if broken is not None:
                breaks.append(broken)
                chain_ok = False  # later entries chain from a broken one: report the first
        if event.action == "audit.finished" and event.audit_id and event.result_sha256:
            finished[event.audit_id] = (event.seq, event.result_sha256)
        prev, expected = event.sha256, event.seq + 1
    head = session.execute(select(EventHead.seq, EventHead.sha256)).first()
    if chain_ok and head is not None and (head.seq, head.sha256) != (expected - 1, prev):
        breaks.append(
            Break(head.seq, f"the head names entry {head.seq} but the log ends at {expected - 1}")
        )
    checked = 0
    for audit_id, document in _results(session):
        checked += 1
        entry = finished.get(audit_id)
        actual = result_sha256(document)
        if entry is None:
            breaks.append(Break(None, f"result of audit {audit_id} has no audit.finished entry"))
        elif entry[1] != actual:
            breaks.append(
                Break(
                    entry[0],
                    f"result of audit {audit_id} was edited "
                    f"(logged sha256 {entry[1]}, recomputed {actual})",
                )
            )
    return Verification(entries=count, results=checked, breaks=breaks)


def _results(session: Session) -> Iterator[tuple[str, dict[str, Any]]]:
    last = 0
    while True:
        rows = session.execute(
            select(Result.id, Result.audit_id, Result.document)
            .join(Audit, Audit.id == Result.audit_id)
            .where(Result.id > last)
            .order_by(Result.id)
            .limit(_VERIFY_BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row.audit_id, row.document
        last = rows[-1].id
