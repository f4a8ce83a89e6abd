"""Group commit for ``POST /v1/audits``: concurrent submissions share one transaction.

One submission needs its token checked, its dataset looked up, a row
inserted, a commit and a publish. Done one request at a time that is four
round trips and a thread hop each, and under load the CPU goes to the
ORM and the thread pool rather than to the requests. Here the route parses
and validates the spec on the event loop, then hands the submission to a
:class:`SubmitQueue`; the queue sends every submission waiting at that
moment to a database thread as one **batch**
(:mod:`audit.api.commit_batch`):

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

from audit.api.commit_batch import Accepted, Outcome, Submission, record_batch, run_batch
from audit.api.errors import MSG_INTERNAL, RETRY_AFTER, ApiError
from audit.settings import Settings

__all__ = [
    "MAX_BATCH",
    "MAX_IN_FLIGHT",
    "Accepted",
    "Outcome",
    "SubmitQueue",
    "Submission",
    "record_batch",
    "run_batch",
]

log = logging.getLogger(__name__)

MAX_BATCH = 128
MAX_IN_FLIGHT = 2
MSG_BUSY = "too many submissions waiting; try again shortly"
MSG_CLOSED = "the API is shutting down; try again shortly"


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
