"""The shards of a large audit: count rows in parallel, merge the counts, store once.

``runner.execute_audit`` plans the shards and launches a chord; each
``biasaudit.run_shard`` calls :func:`execute_shard`, and the chord's callback
``biasaudit.merge_shards`` calls :func:`merge_shards`. The claiming worker's lease
keeper renews the audit's lease while the shards wait in the queue (up to
``BIASAUDIT_SHARD_WAIT_SECONDS``), and shards renew it while they run (whoever holds
the claim), so a sharded audit is re-run only when its shard work is lost.
Database errors that pass are retried as in ``workers.runner``. See
``audit.engine.sharding`` for the counting.
"""

from __future__ import annotations

import logging
from typing import Any

from audit.errors import AuditCancelled, AuditInputError
from audit.settings import get_settings
from audit.storage import repo, session_scope
from workers.inputs import ranged_source, resolve_dataset
from workers.lease import Heartbeat, retry_transient
from workers.logs import audit_context
from workers.runner import SHARD_LEASE_FACTOR, _budget, _finish, _store

log = logging.getLogger("biasaudit.worker")


def _shard_progress(audit_id: str, done_fraction: float) -> None:
    def advance() -> None:
        with session_scope() as session:
            row = repo.load_audit(session=session, audit_id=audit_id)
            if row is not None and row.status == "running":
                repo.update_progress(
                    session=session,
                    audit_id=audit_id,
                    progress=min(0.95, row.progress + done_fraction),
                    lease_seconds=get_settings().lease_seconds * SHARD_LEASE_FACTOR,
                )

    retry_transient(advance, what="recording shard progress", budget=_budget())


def _state(audit_id: str) -> tuple[str, dict[str, Any], str, Any] | None:
    """The audit's status, spec, project and first start (through database outages)."""

    def load() -> tuple[str, dict[str, Any], str, Any] | None:
        with session_scope() as session:
            row = repo.load_audit(session=session, audit_id=audit_id)
            if row is None:
                return None
            return row.status, dict(row.spec), row.project, row.started_at

    return retry_transient(load, what="reading the audit", budget=_budget())


def _resolved(spec: dict[str, Any], project: str) -> tuple[dict[str, Any], Any, Any]:
    """The spec as the engine runs it, the project folder, and the dataset as the reader
    opens it: a local path, or the stored object read by ranges (never copied whole)."""
    from audit.engine import data as data_mod
    from audit.engine.spec import parse_spec

    def resolve() -> tuple[dict[str, Any], Any, Any]:
        spec_dict, base_dir, _ = resolve_dataset(spec, project=project, ranged=True)
        stored = ranged_source(spec, project=project)
        if stored is not None:
            return spec_dict, base_dir, stored
        parsed, _ = parse_spec(spec_dict)
        return spec_dict, base_dir, data_mod.resolve_path(parsed.dataset, base_dir)

    return retry_transient(resolve, what="the dataset lookup", budget=_budget())


def _count(spec: Any, path: Any, shard: Any, should_cancel: Any) -> dict[str, Any]:
    """Count one shard; a CSV shard read by ranges checks its cuts (quote parity)."""
    from audit.engine import data as data_mod
    from audit.engine.cuts import MSG_CUTS_HINT
    from audit.engine.reader import BYTES
    from audit.storage.ranged import QuoteWatch, StoredFile

    stored = path if isinstance(path, StoredFile) else None
    watch = None
    if stored is not None and shard.unit == BYTES:
        stored.watch = watch = QuoteWatch(shard.start, shard.stop)
        stored.horizon = shard.stop
    try:
        part = data_mod.count_chunks(
            spec.dataset,
            path,
            shard=shard,
            chunk_rows=get_settings().chunk_rows,
            max_levels=spec.policy.max_levels,
            should_cancel=should_cancel,
        )
    except (AuditInputError, ValueError) as exc:  # a parser's error, or a row refused
        if watch is None or stored is None or "replaced in the object store" in str(exc):
            raise
        _check_cuts(stored, watch, shard)  # a cut inside quotes explains it: say so
        if isinstance(exc, AuditInputError):
            if " as csv: " not in str(exc):  # a value refused, not the file's text
                raise
            message = f"{exc} (bytes {shard.start}-{shard.stop}). {MSG_CUTS_HINT}"
            raise AuditInputError(message, field="dataset.id") from None
        message = f"dataset.id: cannot read {stored.name} as csv (bytes {shard.start}-"
        message += f"{shard.stop}): {exc}. {MSG_CUTS_HINT}"
        raise AuditInputError(message, field="dataset.id") from None
    if stored is not None:
        if watch is not None:
            _check_cuts(stored, watch, shard)
        copy = stored.columnar.stats if stored.columnar is not None else None
        log.info(
            "shard %d read by range: %d bytes in %d GETs (range %d-%d %s)",
            shard.index,
            stored.stats.bytes + (copy.bytes if copy else 0),  # and its columnar copy's
            stored.stats.requests + (copy.requests if copy else 0),
            shard.start,
            shard.stop,
            shard.unit,
        )
    return part


def _check_cuts(stored: Any, watch: Any, shard: Any) -> None:
    """The shard's range holds an even number of quotes (its cuts are record starts),
    else the input error :data:`audit.engine.cuts.MSG_QUOTED_CUT`. Bytes the parser did
    not reach (it failed first) are read now, to tell a bad cut from a bad row."""
    from audit.engine.cuts import MSG_QUOTED_CUT

    while not watch.complete:
        data = stored.read_range(watch.pos, min(watch.stop, watch.pos + stored.block))
        if not data:
            break
        watch.seen(watch.pos, data, 0, len(data))
    if not watch.balanced:
        message = MSG_QUOTED_CUT.format(name=stored.name, start=shard.start)
        raise AuditInputError(message, field="dataset.id")


def _stored_sha256(spec: dict[str, Any], project: str) -> str | None:
    """The sha256 an upload recorded when it arrived (None for a file given by path)."""
    dataset_id = (spec.get("dataset") or {}).get("id")
    if not dataset_id:
        return None

    def load() -> str | None:
        with session_scope() as session:
            record = repo.get_dataset(session=session, project=project, dataset_id=str(dataset_id))
            return None if record is None else str(record.sha256)

    return retry_transient(load, what="the dataset lookup", budget=_budget())


def execute_shard(
    audit_id: str, index: int, start: int, stop: int, total: int, unit: str = "rows"
) -> dict[str, Any]:
    """Count shard ``[start, stop)`` (rows, or CSV bytes) of a claimed, sharded audit;
    JSON for the chord."""
    from audit.engine import data as data_mod
    from audit.engine.spec import parse_spec

    settings = get_settings()
    with audit_context(audit_id):
        state = _state(audit_id)
        if state is None or state[0] != "running":
            log.info("shard %d skipped: audit is %s", index, state[0] if state else "gone")
            return {"index": index, "skipped": True}
        try:
            spec_dict, _, path = _resolved(state[1], state[2])
            spec, _ = parse_spec(spec_dict)
            lease = settings.lease_seconds * SHARD_LEASE_FACTOR
            shard = data_mod.Shard(index, start, stop, unit)
            with Heartbeat(audit_id, worker=None, lease_seconds=lease, keep_progress=True) as hb:
                part = _count(spec, path, shard, hb.should_cancel)
            _shard_progress(audit_id, 0.9 / max(total, 1))
            log.info("shard %d of %d counted (%d rows)", index + 1, total, part["rows"])
            return part
        except AuditInputError as exc:
            _finish(audit_id, repo.mark_failed, error=str(exc))
            return {"index": index, "error": str(exc)}
        except AuditCancelled:
            _finish(audit_id, repo.mark_cancelled)
            return {"index": index, "cancelled": True}


def merge_shards(audit_id: str, parts: list[dict[str, Any]]) -> str:
    """Merge the shard counts of an audit into one results document and store it."""
    from audit.engine import sharding

    with audit_context(audit_id):
        if any("counts" not in p for p in parts):
            log.info("merge skipped: a shard failed, was cancelled or skipped")
            return "skipped"
        state = _state(audit_id)
        if state is None or state[0] != "running":
            return "skipped"
        started = state[3]
        try:
            spec_dict, _, path = _resolved(state[1], state[2])
            results = sharding.results_from_parts(
                spec_dict,
                parts,
                audit_id=audit_id,
                path=path,
                started_at=started.isoformat(timespec="seconds") if started else None,
                sha256=_stored_sha256(state[1], state[2]),
            )
        except AuditInputError as exc:
            _finish(audit_id, repo.mark_failed, error=str(exc))
            return "failed"
        return _store(audit_id, results, project=state[2])
