"""Every storage operation in one namespace: ``from audit.storage import repo``.

Each function takes keyword-only arguments and a ``session``; the caller owns
the transaction (``with session_scope() as session: ...``). They live in
small modules by topic and are re-exported here:

- ``accounts``: projects (tenants), API tokens, datasets, models;
- ``audits``: create (idempotency keys), tenant-scoped get/list, results, reviews;
- ``jobs``: the worker side: claim with a lease, progress, results, failure, cancel;
- ``schedules``: recurring audits (cron);
- ``events``: the append-only, hash-chained event log and ``verify_log``;
- ``reviews``: reviews as dicts, the review state, separation of duties;
- ``history``: compare two audits, a model's or schedule's runs.
"""

from __future__ import annotations

from audit.storage.accounts import (
    ProjectError,
    create_dataset,
    create_model,
    create_token,
    ensure_project,
    get_dataset,
    get_datasets,
    get_model,
    hash_token,
    list_tokens,
    revoke_token,
    verify_token,
    verify_tokens,
)
from audit.storage.audits import (
    AuditNotFound,
    IdempotencyConflict,
    SelfReview,
    add_review,
    create_audit,
    get_audit,
    get_results,
    list_findings,
    list_reviews,
    load_audit,
)
from audit.storage.jobs import (
    claim_audit,
    fail_stale_audits,
    mark_cancelled,
    mark_failed,
    request_cancel,
    store_results,
    update_progress,
)
from audit.storage.listing import list_audits
from audit.storage.models import ApiToken, Audit, Dataset, ModelArtifact, Review, Schedule
from audit.storage.schedules import (
    ScheduleError,
    advance_schedule,
    create_schedule,
    due_schedules,
    get_schedule,
    list_schedules,
)

__all__ = [
    "ApiToken",
    "Audit",
    "AuditNotFound",
    "Dataset",
    "IdempotencyConflict",
    "ModelArtifact",
    "ProjectError",
    "Review",
    "Schedule",
    "ScheduleError",
    "SelfReview",
    "add_review",
    "advance_schedule",
    "claim_audit",
    "create_audit",
    "create_dataset",
    "create_model",
    "create_schedule",
    "create_token",
    "due_schedules",
    "ensure_project",
    "fail_stale_audits",
    "get_audit",
    "get_dataset",
    "get_datasets",
    "get_model",
    "get_results",
    "get_schedule",
    "hash_token",
    "list_audits",
    "list_findings",
    "list_reviews",
    "list_schedules",
    "list_tokens",
    "load_audit",
    "mark_cancelled",
    "mark_failed",
    "request_cancel",
    "revoke_token",
    "store_results",
    "update_progress",
    "verify_token",
    "verify_tokens",
]
