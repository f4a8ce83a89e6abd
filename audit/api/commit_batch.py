"""One batch of ``POST /v1/audits`` submissions in the database: check, insert, commit, publish.

:class:`audit.api.group_commit.SubmitQueue` collects the submissions on the event
loop and hands each batch to :func:`run_batch` on a database thread. Here the
batch's tokens are checked in one ``SELECT``, its datasets looked up in another,
its accepted audits inserted with one multi-row ``INSERT`` and committed once; a
batch that fails in the database is retried in halves, so one bad submission
fails alone; after the commit, one ``LPUSH`` per queue publishes the new audits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from audit.api.body import parse_json
from audit.api.deps import SUBMIT_ACTION, SUBMIT_ROLES, authorize, bad_token
from audit.api.errors import (
    MSG_INTERNAL,
    ApiError,
    database_unavailable,
    unavailable_error,
    unreachable,
)
from audit.api.submission import (
    PreparedSpec,
    deleted_finder,
    model_finder,
    parse_submitted,
    resolve_spec,
)
from audit.engine.confine import upload_refs
from audit.engine.spec import AuditSpec
from audit.queue import publish_many, queue_for
from audit.settings import Settings
from audit.storage.accounts import LiveToken
from audit.storage.audits import (
    IdempotencyConflict,
    insert_audits,
    insert_keyed_audit,
    new_audit_row,
    submitted_event,
)
from audit.storage.db import get_sessionmaker, lock_writes
from audit.storage.events import append_events
from audit.storage.models import plausible_id
from audit.storage.repo import get_datasets, verify_tokens

log = logging.getLogger(__name__)


@dataclass
class Submission:
    """One request's part of a batch: what the event loop parsed, and the raw body."""

    token: str = field(repr=False)  # the plaintext bearer token: never in a repr or log
    raw: dict[str, Any] | None
    spec: AuditSpec | None
    spec_error: ApiError | None = None
    idempotency_key: str | None = None
    # A large body is parsed only once its token has passed (here, in the batch):
    # an unauthenticated caller cannot make the server parse a megabyte of JSON.
    body: bytes | None = field(default=None, repr=False)
    key_error: ApiError | None = None  # an invalid Idempotency-Key header (after the body)
    request_id: str | None = None  # for log lines written on the database thread


@dataclass(frozen=True)
class Accepted:
    """A submission recorded (or found again by its Idempotency-Key)."""

    audit_id: str
    status: str
    queue: str
    project: str
    token_id: int
    new: bool = True
    published: bool = False


Outcome = Accepted | ApiError


def _parse_deferred(sub: Submission) -> ApiError | None:
    """Parse a body kept for after the token check; its error (or the header's), if any."""
    if sub.body is not None:
        try:
            raw = parse_json(sub.body)
            sub.spec = parse_submitted(raw)
            sub.raw = raw
        except ApiError as exc:
            return exc
        finally:
            sub.body = None
    return sub.key_error


def _upload_ids(raw: dict[str, Any]) -> list[str]:
    """The datasets a spec's probes name by id (lda-search's train_id), fetched with the batch."""
    return [r.dataset_id for r in upload_refs(raw) if plausible_id(r.dataset_id)]


def _dataset_of(datasets: dict[tuple[str, str], Any], project: str, dataset_id: str) -> Any:
    return datasets.get((project, dataset_id))


def _row(prepared: PreparedSpec, *, token: LiveToken, key: str | None) -> dict[str, Any]:
    return new_audit_row(
        spec=prepared.stored,
        name=prepared.spec.name,
        domain=prepared.spec.domain,
        spec_sha256=prepared.spec_sha256,
        dataset_sha256=prepared.dataset_sha256,
        project=token.project,
        token_id=token.id,
        submitted_by=token.actor,
        idempotency_key=key,
    )


def record_batch(
    session: Session, batch: list[Submission], settings: Settings
) -> list[Accepted | ApiError]:
    """Check and insert a batch in the session's transaction (the caller commits).

    Returns one outcome per submission, in order. Raises only on database
    errors, which concern the whole batch.
    """
    lock_writes(session)  # SQLite: a concurrent DELETE waits for this batch, or it for it
    tokens = verify_tokens(session=session, tokens=[s.token for s in batch])
    outcomes: list[Accepted | ApiError | None] = [None] * len(batch)
    for i, (sub, row) in enumerate(zip(batch, tokens, strict=True)):
        if row is None:
            outcomes[i] = bad_token()
        else:
            role_error = authorize(row.role, SUBMIT_ROLES, action=SUBMIT_ACTION)
            outcomes[i] = role_error or sub.spec_error or _parse_deferred(sub)
    wanted = [
        (row.project, dataset_id)
        for sub, row, out in zip(batch, tokens, outcomes, strict=True)
        if out is None and row is not None and sub.spec is not None and sub.raw is not None
        for dataset_id in [sub.spec.dataset.id, *_upload_ids(sub.raw)]
        if dataset_id
    ]
    datasets = get_datasets(session=session, keys=wanted, lock=True)  # vs. erase: FOR SHARE
    plain: list[dict[str, Any]] = []
    keyed: list[tuple[int, dict[str, Any], str]] = []
    logged: list[dict[str, Any]] = []
    for i, (sub, row) in enumerate(zip(batch, tokens, strict=True)):
        if outcomes[i] is not None or row is None or sub.spec is None or sub.raw is None:
            continue
        project = row.project
        try:
            prepared = resolve_spec(
                sub.raw,
                sub.spec,
                project=project,
                settings=settings,
                find_dataset=partial(_dataset_of, datasets, project),
                find_model=model_finder(session, project),
                find_deleted=deleted_finder(session, project),
            )
            values = _row(prepared, token=row, key=sub.idempotency_key)
            queue = queue_for(prepared.stored)
        except ApiError as exc:
            outcomes[i] = exc
            continue
        except Exception:  # nothing is written for it yet: it fails alone, the batch goes on
            log.exception(
                "could not prepare a submission; answering 500 for it alone",
                extra={"request_id": sub.request_id},
            )
            outcomes[i] = ApiError(500, MSG_INTERNAL)
            continue
        if sub.idempotency_key is None:
            plain.append(values)
            outcomes[i] = Accepted(values["id"], "queued", queue, project, row.id)
        else:
            keyed.append((i, values, queue))
    # Keyed rows in one global order, so two batches holding the same keys in opposite
    # orders cannot deadlock on each other's uncommitted rows (the sort is stable: the
    # first of two equal keys in a batch still wins).
    for i, values, queue in sorted(keyed, key=lambda k: (k[1]["project"], k[1]["idempotency_key"])):
        try:
            found = insert_keyed_audit(session=session, row=values)
        except IdempotencyConflict as exc:
            outcomes[i] = ApiError(409, str(exc), field="Idempotency-Key")
            continue
        outcomes[i] = Accepted(
            found.id, found.status, queue, values["project"], values["token_id"], new=found.inserted
        )
        if found.inserted:
            logged.append(values)
    insert_audits(session=session, rows=plain)
    # last: the log's head lock is the last one this transaction takes (no lock cycle)
    append_events(session=session, entries=[submitted_event(v) for v in plain + logged])
    done = [out for out in outcomes if out is not None]
    if len(done) != len(batch):  # never expected; must not shift answers between requests
        raise RuntimeError(f"{len(batch) - len(done)} submission(s) got no outcome")
    return done


def _publish(outcomes: list[Outcome], broker_url: str | None) -> list[Outcome]:
    jobs = [(o.audit_id, o.queue) for o in outcomes if isinstance(o, Accepted) and o.new]
    if not jobs or not broker_url:
        return outcomes
    try:
        publish_many(jobs, broker_url=broker_url)
    except Exception as exc:  # broker down: the reconciler publishes queued rows later
        log.warning(
            "publish failed; %d audit(s) stay queued for the reconciler",
            len(jobs),
            extra={"error": type(exc).__name__},
        )
        return outcomes
    return [
        replace(o, published=True) if isinstance(o, Accepted) and o.new else o for o in outcomes
    ]


def _record(batch: list[Submission], settings: Settings) -> list[Outcome]:
    """Record ``batch`` in one transaction; on a batch error, each half in its own, down to one.

    An unreachable database answers 503 to every submission at once. Splitting in
    halves finds a submission that fails in the database in about 2 log2(n)
    transactions, and every other one is recorded.
    """
    factory = get_sessionmaker(settings.db_url)
    try:
        with factory() as session, session.begin():
            return list(record_batch(session, batch, settings))
    except Exception as exc:
        if unreachable(exc):
            log.warning("database unavailable: %s", type(exc).__name__)
            return [unavailable_error() for _ in batch]
        if len(batch) == 1:
            if database_unavailable(exc):  # e.g. a deadlock or timeout, again: retry later
                log.warning("submission failed in the database: %s", type(exc).__name__)
                return [unavailable_error()]
            log.exception(
                "submission failed in the database; answering 500 for it alone",
                extra={"request_id": batch[0].request_id},
            )
            return [ApiError(500, MSG_INTERNAL)]
        log.warning(
            "batch of %d failed (%s); retrying it in halves",
            len(batch),
            type(exc).__name__,
        )
    half = len(batch) // 2
    return _record(batch[:half], settings) + _record(batch[half:], settings)


def run_batch(batch: list[Submission], settings: Settings) -> list[Outcome]:
    """Record ``batch`` (one transaction, split only on error), then publish it once.

    One outcome per submission, in order: :class:`Accepted` or the
    :class:`ApiError` to answer (each its own object).
    """
    return _publish(_record(batch, settings), settings.broker_url)
