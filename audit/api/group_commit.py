"""Group commit for ``POST /v1/audits``: concurrent submissions share one transaction.

One submission needs its token checked, its dataset looked up, a row
inserted, a commit and a publish. Done one request at a time that is four
round trips and a thread hop each, and under load the CPU goes to the
ORM and the thread pool rather than to the requests. Here the route parses
and validates the spec on the event loop, then hands the submission to a
:class:`SubmitQueue`; the queue sends every submission waiting at that
moment to a database thread as one **batch**:

1. the batch's tokens in one ``SELECT`` (constant-time hash comparison,
   revoked tokens refused, exactly as :func:`audit.storage.accounts.verify_token`);
2. each submission's role, its spec error if it had one (so ``401`` and ``403``
   still come before ``422``), its datasets (one ``SELECT`` for the batch)
   and paths, with the same outcomes as one at a time;
3. one multi-row ``INSERT`` of the accepted audits, and one ``COMMIT``;
4. after the commit, one pipelined ``LPUSH`` per queue (:func:`audit.queue.publish_many`).

While one batch is in the database the next one fills up, so batches grow
with the load and the per-submission cost falls; a lone request is sent at
once (no timer, no added latency when idle). At most :data:`MAX_IN_FLIGHT`
batches run at a time, each of at most :data:`MAX_BATCH` submissions.

Nothing is weaker than one at a time: the rows are committed before any
message names them; a revoked token is refused on the very next batch; a
batch that fails on something other than the database being unreachable is
retried one submission per transaction, so one bad submission cannot fail
the others; if the database is unreachable every submission of the batch
gets ``503`` and nothing was written.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from audit.api.body import parse_json
from audit.api.deps import SUBMIT_ACTION, SUBMIT_ROLES, authorize, bad_token
from audit.api.errors import (
    MSG_INTERNAL,
    RETRY_AFTER,
    ApiError,
    database_unavailable,
    unavailable_error,
    unreachable,
)
from audit.api.submission import PreparedSpec, model_finder, parse_submitted, resolve_spec
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
from audit.storage.db import get_sessionmaker
from audit.storage.events import append_events
from audit.storage.repo import get_datasets, verify_tokens

log = logging.getLogger("audit.api.group_commit")

MAX_BATCH = 128
MAX_IN_FLIGHT = 2
MSG_BUSY = "too many submissions waiting; try again shortly"
MSG_CLOSED = "the API is shutting down; try again shortly"


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
    tokens = verify_tokens(session=session, tokens=[s.token for s in batch])
    outcomes: list[Accepted | ApiError | None] = [None] * len(batch)
    for i, (sub, row) in enumerate(zip(batch, tokens, strict=True)):
        if row is None:
            outcomes[i] = bad_token()
        else:
            role_error = authorize(row.role, SUBMIT_ROLES, action=SUBMIT_ACTION)
            outcomes[i] = role_error or sub.spec_error or _parse_deferred(sub)
    wanted = [
        (row.project, sub.spec.dataset.id)
        for sub, row, out in zip(batch, tokens, outcomes, strict=True)
        if out is None and row is not None and sub.spec is not None and sub.spec.dataset.id
    ]
    datasets = get_datasets(session=session, keys=wanted)
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


class SubmitQueue:
    """Collects submissions on the event loop and runs them in batches on database threads.

    At most ``max_pending`` submissions wait for a batch (beyond that: 503 with
    ``Retry-After``); a submission whose request was cancelled before its batch
    formed is dropped, not recorded; after :meth:`close` every submission is 503.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_pending: int | None = None,
        runner: Callable[[list[Submission], Settings], list[Outcome]] = run_batch,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.max_pending = max_pending or 4 * max_batch * max_in_flight
        self._runner = runner
        self._observe = observe
        self._closed = False
        self._executor = ThreadPoolExecutor(max_in_flight, thread_name_prefix="group-commit")
        # Per event loop (a TestClient may run the app on several loops in turn).
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, submission: Submission) -> Accepted:
        """Record one submission with whatever else is waiting; raises its error if refused."""
        if self._closed:
            raise ApiError(503, MSG_CLOSED, headers=RETRY_AFTER)
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState()
        if len(state.pending) >= self.max_pending:
            raise ApiError(503, MSG_BUSY, headers={"Retry-After": "1"})
        future: asyncio.Future[Outcome] = loop.create_future()
        state.pending.append((submission, future))
        if not state.scheduled:
            # Launch at the end of this loop iteration: requests parsed in the same
            # iteration go together, and a lone request waits for nothing.
            state.scheduled = True
            loop.call_soon(self._launch, loop, state)
        outcome = await future
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    def _launch(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        state.scheduled = False
        # Requests cancelled while waiting (client gone, timeout) are not recorded.
        state.pending = [(s, f) for s, f in state.pending if not f.done()]
        while state.pending and state.in_flight < self.max_in_flight:
            batch, state.pending = (
                state.pending[: self.max_batch],
                state.pending[self.max_batch :],
            )
            try:
                work = loop.run_in_executor(self._executor, self._run, [s for s, _ in batch])
            except RuntimeError:  # the executor is shut down: answer instead of hanging
                self._resolve(
                    batch, [ApiError(503, MSG_CLOSED, headers=RETRY_AFTER) for _ in batch]
                )
                continue
            state.in_flight += 1
            work.add_done_callback(
                lambda done, batch=batch: self._finish(loop, state, batch, done)  # type: ignore[misc]
            )

    def _run(self, batch: list[Submission]) -> list[Outcome]:
        start = time.perf_counter()
        try:
            return self._runner(batch, self.settings)
        finally:
            if self._observe is not None:
                self._observe(len(batch), time.perf_counter() - start)

    @staticmethod
    def _resolve(
        batch: list[tuple[Submission, asyncio.Future[Outcome]]], outcomes: list[Outcome]
    ) -> None:
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():  # the client may have gone away
                future.set_result(outcome)

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        state: _LoopState,
        batch: list[tuple[Submission, asyncio.Future[Outcome]]],
        done: asyncio.Future[list[Outcome]],
    ) -> None:
        state.in_flight -= 1
        try:
            outcomes: list[Outcome] = done.result()
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} submissions")
        except BaseException:  # the runner itself failed: each submission gets its own 500
            log.exception("a submission batch failed; answering 500 to each of its submissions")
            outcomes = [ApiError(500, MSG_INTERNAL) for _ in batch]
        self._resolve(batch, outcomes)
        if state.pending:
            self._launch(loop, state)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Refuse new submissions, and stop the database threads once their batches are done."""
        self._closed = True
        self._executor.shutdown(wait=True)


class _LoopState:
    """The submissions waiting on one event loop, and its batches in flight."""

    def __init__(self) -> None:
        self.pending: list[tuple[Submission, asyncio.Future[Outcome]]] = []
        self.in_flight = 0
        self.scheduled = False
