"""Group commit of submissions (audit.api.group_commit, commit_batch): batching, and answers.

The first tests drive the queue mechanics with a recording runner (no
database). The others send concurrent submissions through the real app
(real PostgreSQL, real Redis db 15) and check that a batch gives every
submission the answer it would have got alone, writes one row per accepted
submission, publishes one message per new audit, and that one submission
failing in the database does not fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from audit.api import commit_batch
from audit.api.app import create_app
from audit.api.errors import ApiError
from audit.api.group_commit import Accepted, Outcome, Submission, SubmitQueue
from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Audit
from tests.audit.api.helpers import auth, make_csv, queued_messages, spec_for


def _submission(i: int) -> Submission:
    return Submission(token=f"t{i}", raw=None, spec=None)


def test_queue_batches_waiting_submissions_and_caps_batches_in_flight() -> None:
    batches: list[list[str]] = []
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()
    release = threading.Event()

    def runner(batch: list[Submission], _settings: Settings) -> list[Outcome]:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            batches.append([s.token for s in batch])
        release.wait(5)
        with lock:
            in_flight -= 1
        return [
            ApiError(401, "no") if s.token == "t7" else Accepted(s.token, "queued", "cpu", "p", 1)
            for s in batch
        ]

    queue = SubmitQueue(Settings(), max_batch=4, max_in_flight=2, runner=runner)

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(queue.submit(_submission(i))) for i in range(10)]
        await asyncio.sleep(0.2)  # the first batches are blocked in the runner
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        queue.close()
    assert most_in_flight == 2
    assert all(len(b) <= 4 for b in batches)
    assert sorted(t for b in batches for t in b) == sorted(f"t{i}" for i in range(10))
    # submitted in one loop iteration: the first batch is full, not a lone request
    assert batches[0] == ["t0", "t1", "t2", "t3"]
    for i, result in enumerate(results):
        if i == 7:
            assert isinstance(result, ApiError) and result.status_code == 401
        else:
            assert isinstance(result, Accepted) and result.audit_id == f"t{i}"


def test_queue_sends_a_lone_submission_at_once() -> None:
    sizes: list[int] = []

    def runner(batch: list[Submission], _settings: Settings) -> list[Outcome]:
        sizes.append(len(batch))
        return [Accepted("a", "queued", "cpu", "p", 1) for _ in batch]

    queue = SubmitQueue(Settings(), runner=runner)

    async def main() -> None:
        for i in range(3):
            await asyncio.wait_for(queue.submit(_submission(i)), 2)

    try:
        asyncio.run(main())
    finally:
        queue.close()
    assert sizes == [1, 1, 1]


def test_runner_failure_answers_500_to_each_submission_of_the_batch() -> None:
    def runner(batch: list[Submission], _settings: Settings) -> list[Outcome]:
        raise RuntimeError("runner broke")

    queue = SubmitQueue(Settings(), runner=runner)

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(queue.submit(_submission(i)) for i in range(5)), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        queue.close()
    assert all(isinstance(r, ApiError) and r.status_code == 500 for r in results)
    assert len({id(r) for r in results}) == 5  # one error object per request, none shared


def test_closed_queue_busy_queue_and_cancelled_submissions() -> None:
    seen: list[str] = []

    def runner(batch: list[Submission], _settings: Settings) -> list[Outcome]:
        seen.extend(s.token for s in batch)
        return [Accepted(s.token, "queued", "cpu", "p", 1) for s in batch]

    queue = SubmitQueue(Settings(), max_pending=3, runner=runner)

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(queue.submit(_submission(i))) for i in range(5)]
        await asyncio.sleep(0)  # all five reach submit(); the batch is not formed yet
        tasks[1].cancel()  # its client went away before its batch formed
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    assert seen == ["t0", "t2"]  # t1 cancelled: not recorded; t3 and t4 over max_pending
    for refused in results[3:]:
        assert isinstance(refused, ApiError) and refused.status_code == 503
        assert refused.headers and "Retry-After" in refused.headers
    queue.close()

    async def after_close() -> Any:
        return await asyncio.gather(queue.submit(_submission(9)), return_exceptions=True)

    [closed] = asyncio.run(after_close())
    assert isinstance(closed, ApiError) and closed.status_code == 503


# ------------------------------------------------------------------ real database


def _recording(sizes: list[int]) -> Callable[[list[Submission], Settings], list[Outcome]]:
    def runner(batch: list[Submission], settings: Settings) -> list[Outcome]:
        sizes.append(len(batch))
        return commit_batch.run_batch(batch, settings)

    return runner


async def _send_all(app: Any, requests: list[tuple[str, dict[str, str], Any]]) -> list[Any]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        return await asyncio.gather(
            *(http.post(path, json=body, headers=headers) for path, headers, body in requests)
        )


def _upload(app: Any, token: str) -> str:
    async def go() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            response = await http.post(
                "/v1/datasets",
                files={"file": ("d.csv", make_csv(), "text/csv")},
                headers=auth(token),
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    return asyncio.run(go())


def _audit_ids(settings: Settings) -> dict[str, str]:
    with db.session_scope(settings.db_url) as session:
        return {a.id: a.project for a in session.scalars(select(Audit))}


def test_concurrent_submissions_get_the_answers_they_would_get_alone(
    api_settings: Settings, make_token: Callable[..., str], redis_db: redis.Redis
) -> None:
    app = create_app(api_settings)
    sizes: list[int] = []
    app.state.submit_queue = SubmitQueue(api_settings, runner=_recording(sizes))
    acme, umbrella = make_token("submitter"), make_token("submitter", project="umbrella")
    reviewer = make_token("reviewer")
    acme_ds, umbrella_ds = _upload(app, acme), _upload(app, umbrella)
    plain = [("/v1/audits", auth(acme), spec_for(acme_ds, name=f"a{i}")) for i in range(20)]
    plain += [
        ("/v1/audits", auth(umbrella), spec_for(umbrella_ds, name=f"u{i}")) for i in range(10)
    ]
    keyed = {**auth(acme), "Idempotency-Key": "k-1"}
    cases = [
        ("/v1/audits", auth("ba_not-a-token"), spec_for(acme_ds)),  # 401
        ("/v1/audits", auth(reviewer), spec_for(acme_ds)),  # 403
        ("/v1/audits", auth(acme), spec_for(umbrella_ds)),  # 404: another project's dataset
        ("/v1/audits", auth(acme), spec_for(acme_ds, probes=[{"kind": "nope"}])),  # 422
        ("/v1/audits", auth("ba_not-a-token"), {"name": 3}),  # 401 before 422
        ("/v1/audits", keyed, spec_for(acme_ds, name="keyed")),  # the same key twice:
        ("/v1/audits", keyed, spec_for(acme_ds, name="keyed")),  # one audit
        ("/v1/audits", {**auth(acme), "Idempotency-Key": "k-2"}, spec_for(acme_ds, name="x")),
        ("/v1/audits", {**auth(acme), "Idempotency-Key": "k-2"}, spec_for(acme_ds, name="y")),
    ]
    responses = asyncio.run(_send_all(app, plain + cases))
    app.state.submit_queue.close()
    ok, rest = responses[: len(plain)], responses[len(plain) :]
    assert [r.status_code for r in ok] == [202] * len(plain)
    codes = [r.status_code for r in rest]
    assert codes[:5] == [401, 403, 404, 422, 401]
    assert rest[2].json()["field"] == "dataset.id"
    assert rest[3].json()["field"] == "probes[0].kind"
    assert codes[5:7] == [202, 202] and rest[5].json()["id"] == rest[6].json()["id"]
    assert sorted(codes[7:]) == [202, 409]  # whichever came second conflicts
    assert max(sizes) > 1, f"concurrent submissions were never batched: {sizes}"

    stored = _audit_ids(api_settings)
    accepted = {r.json()["id"] for r in ok} | {rest[5].json()["id"]}
    accepted |= {r.json()["id"] for r in rest[7:] if r.status_code == 202}
    assert set(stored) == accepted  # one row per accepted submission, nothing else
    assert sum(p == "umbrella" for p in stored.values()) == 10
    for r in ok + [rest[5]]:
        assert r.headers["location"] == f"/v1/audits/{r.json()['id']}"
    published = [m["headers"]["argsrepr"] for m in queued_messages(redis_db, "cpu")]
    assert sorted(published) == sorted(repr([audit_id]) for audit_id in accepted)


def test_one_submission_failing_in_the_database_does_not_fail_its_batch(
    api_settings: Settings,
    make_token: Callable[..., str],
    redis_db: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="audit.api.commit_batch")
    real_row = commit_batch._row

    def poisoned(prepared: Any, **kwargs: Any) -> dict[str, Any]:
        row = real_row(prepared, **kwargs)
        if prepared.spec.name == "poison":
            row["status"] = "bogus"  # violates the status CHECK constraint
        return row

    monkeypatch.setattr(commit_batch, "_row", poisoned)
    app = create_app(api_settings)
    sizes: list[int] = []
    app.state.submit_queue = SubmitQueue(api_settings, runner=_recording(sizes))
    token = make_token("submitter")
    ds = _upload(app, token)
    requests = [("/v1/audits", auth(token), spec_for(ds, name=f"ok{i}")) for i in range(12)]
    requests.insert(5, ("/v1/audits", auth(token), spec_for(ds, name="poison")))
    responses = asyncio.run(_send_all(app, requests))
    app.state.submit_queue.close()
    codes = [r.status_code for r in responses]
    assert codes[5] == 500 and codes[:5] + codes[6:] == [202] * 12
    # the poison shared a batch, which was then retried one submission at a time
    assert any("retrying it in halves" in r.getMessage() for r in caplog.records)
    stored = _audit_ids(api_settings)
    assert set(stored) == {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(queued_messages(redis_db, "cpu")) == 12


def test_batch_with_the_database_down_is_503_at_once(
    api_settings: Settings, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused: every submission 503 with Retry-After, no splitting and retrying."""
    caplog.set_level(logging.WARNING, logger="audit.api.commit_batch")
    app = create_app(api_settings)
    token = make_token("submitter")
    ds = _upload(app, token)
    down = Settings(**{**api_settings.model_dump(), "database_url": _unreachable()})
    app.state.submit_queue = SubmitQueue(down)
    requests = [("/v1/audits", auth(token), spec_for(ds, name=f"n{i}")) for i in range(8)]
    responses = asyncio.run(_send_all(app, requests))
    app.state.submit_queue.close()
    assert [r.status_code for r in responses] == [503] * 8
    assert all(r.headers.get("retry-after") for r in responses)
    assert all("database unavailable" in r.json()["detail"] for r in responses)
    assert not any("halves" in r.getMessage() for r in caplog.records)
    assert _audit_ids(api_settings) == {}  # the test's real database got nothing either


def test_unusable_values_fail_alone_without_rolling_back_their_batch(
    api_settings: Settings,
    make_token: Callable[..., str],
    redis_db: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="audit.api.commit_batch")
    app = create_app(api_settings)
    sizes: list[int] = []
    app.state.submit_queue = SubmitQueue(api_settings, runner=_recording(sizes))
    token = make_token("submitter")
    ds = _upload(app, token)
    good = [("/v1/audits", auth(token), spec_for(ds, name=f"g{i}")) for i in range(10)]
    path_spec = spec_for(ds)
    path_spec["dataset"] = {**path_spec["dataset"], "id": None, "path": "x" * 5000 + ".csv"}
    bad = [
        ("/v1/audits", auth(token), spec_for(ds, name="nul\x00name")),  # PostgreSQL refuses NUL
        ("/v1/audits", auth(token), path_spec),  # a file name too long for the OS
    ]
    responses = asyncio.run(_send_all(app, good[:5] + bad + good[5:]))
    app.state.submit_queue.close()
    codes = [r.status_code for r in responses]
    assert codes[5:7] == [422, 422], [r.json() for r in responses[5:7]]
    assert responses[5].json()["field"] == "name"
    assert responses[6].json()["field"] == "dataset.path"
    assert codes[:5] + codes[7:] == [202] * 10
    assert max(sizes) > 1
    assert not any("halves" in r.getMessage() for r in caplog.records)  # nothing rolled back
    assert len(_audit_ids(api_settings)) == 10 == len(queued_messages(redis_db, "cpu"))


def test_two_batches_with_the_same_keys_in_opposite_orders_do_not_deadlock(
    api_settings: Settings, make_token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    from audit.api.submission import parse_submitted

    caplog.set_level(logging.WARNING, logger="audit.api.commit_batch")

    app = create_app(api_settings)
    token = make_token("submitter")
    ds = _upload(app, token)
    app.state.submit_queue.close()

    def sub(key: str) -> Submission:
        raw = spec_for(ds, name=key)
        return Submission(token=token, raw=raw, spec=parse_submitted(raw), idempotency_key=key)

    for round_ in range(3):
        keys = [f"r{round_}-k{i}" for i in range(6)]
        batches = [[sub(k) for k in keys], [sub(k) for k in reversed(keys)]]
        outcomes: list[list[Outcome]] = [[], []]
        barrier = threading.Barrier(2)

        def run(j: int, batch: list[Submission], out: list[list[Outcome]], start: Any) -> None:
            start.wait()
            out[j] = commit_batch.run_batch(batch, api_settings)

        threads = [
            threading.Thread(target=run, args=(j, batches[j], outcomes, barrier)) for j in (0, 1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        first = {o.audit_id for o in outcomes[0] if isinstance(o, Accepted)}
        second = {o.audit_id for o in outcomes[1] if isinstance(o, Accepted)}
        assert len(first) == 6 and first == second, (outcomes, round_)
    assert len(_audit_ids(api_settings)) == 18
    # no batch failed (a deadlock would be detected, split and retried: logged)
    assert not [r.getMessage() for r in caplog.records if "halves" in r.getMessage()]


def test_checks_before_the_body_keep_401_first(
    api_settings: Settings, make_token: Callable[..., str]
) -> None:
    app = create_app(api_settings)
    token = make_token("submitter")
    ds = _upload(app, token)
    long_key = "k" * 201
    requests = [
        ("/v1/audits", {**auth("ba_unknown-token"), "Idempotency-Key": long_key}, spec_for(ds)),
        ("/v1/audits", {**auth(token), "Idempotency-Key": long_key}, spec_for(ds)),
        ("/v1/audits", auth("not a token of ours"), {"name": 3}),
    ]
    responses = asyncio.run(_send_all(app, requests))
    app.state.submit_queue.close()
    assert [r.status_code for r in responses] == [401, 422, 401]
    assert responses[1].json()["field"] == "Idempotency-Key"
    assert responses[2].headers["www-authenticate"] == "Bearer"
    assert _audit_ids(api_settings) == {}


def _unreachable() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/none"


def test_run_batch_on_sqlite(tmp_path: Path) -> None:
    """The batch statements (bulk INSERT, ON CONFLICT ... RETURNING) on the embedded database."""
    from audit.api.submission import parse_submitted
    from audit.storage.models import ApiToken
    from audit.storage.repo import create_dataset, create_token, revoke_token

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ba.db'}", artifact_dir=tmp_path)
    db.upgrade(settings.db_url)
    with db.session_scope(settings.db_url) as session:
        token, row = create_token(session=session, project="acme", role="submitter")
        token_id = row.id
        revoked, gone = create_token(session=session, project="acme", role="submitter")
        revoke_token(session=session, project="acme", token_id=gone.id)
        ds = create_dataset(
            session=session,
            project="acme",
            sha256="0" * 64,
            path="x.csv",
            rows=1,
            columns=["sex", "race", "qualified", "advanced"],
            size_bytes=1,
        ).id

    def sub(name: str, key: str | None = None) -> Submission:
        raw = spec_for(ds, name=name)
        return Submission(token=token, raw=raw, spec=parse_submitted(raw), idempotency_key=key)

    refused = replace(sub("r"), token=revoked)
    batch = [sub("a"), sub("b"), sub("k", "key-1"), sub("k", "key-1"), sub("other", "key-1")]
    outcomes = commit_batch.run_batch([*batch, refused], settings)
    a, b, k1, k2, conflict, unauthorized = outcomes
    assert isinstance(unauthorized, ApiError) and unauthorized.status_code == 401
    assert isinstance(a, Accepted) and isinstance(b, Accepted) and a.new and b.new
    assert isinstance(k1, Accepted) and isinstance(k2, Accepted)
    assert k1.audit_id == k2.audit_id and k1.new and not k2.new
    assert isinstance(conflict, ApiError) and conflict.status_code == 409
    assert not any(o.published for o in (a, b, k1))  # no broker configured: nothing sent
    assert set(_audit_ids(settings)) == {a.audit_id, b.audit_id, k1.audit_id}
    with db.session_scope(settings.db_url) as session:
        used = session.get(ApiToken, token_id)
        assert used is not None and used.last_used_at is not None  # touched by the batch
    db.dispose_engines()


def test_large_bodies_are_parsed_only_after_their_token_passed(
    api_settings: Settings, make_token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json as _json

    from audit.api.routes import audits as route

    parsed: list[str] = []
    real = commit_batch.parse_submitted

    def counting(raw: Any, **kw: Any) -> Any:
        parsed.append(raw.get("name", "?") if isinstance(raw, dict) else "?")
        return real(raw, **kw)

    monkeypatch.setattr(commit_batch, "parse_submitted", counting)
    monkeypatch.setattr(route, "parse_submitted", counting)
    app = create_app(api_settings)
    token = make_token("submitter")
    ds = _upload(app, token)
    pad = " " * (route.EAGER_PARSE_BYTES + 10)  # whitespace: still one valid JSON document

    def big(name: str) -> bytes:
        return (_json.dumps(spec_for(ds, name=name)) + pad).encode()

    async def send(headers: dict[str, str], body: bytes) -> Any:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            headers = {**headers, "content-type": "application/json"}
            return await http.post("/v1/audits", content=body, headers=headers)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                send(auth("ba_well-formed-but-unknown"), big("stranger")),
                send(auth(token), big("member")),
                send(auth(token), b"{not json" + pad.encode()),
                send({**auth(token), "Idempotency-Key": ""}, big("bad-key")),
                send(auth(token), _json.dumps(spec_for(ds, name="small")).encode()),
            )
        )

    responses = asyncio.run(main())
    app.state.submit_queue.close()
    assert [r.status_code for r in responses] == [401, 202, 422, 422, 202]
    assert responses[2].json()["field"] == "body"
    assert responses[3].json()["field"] == "Idempotency-Key"
    assert "stranger" not in parsed  # never parsed: its token failed first
    assert {"member", "bad-key", "small"} <= set(parsed)
    stored = _audit_ids(api_settings)
    assert set(stored) == {responses[1].json()["id"], responses[4].json()["id"]}
