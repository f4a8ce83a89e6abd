"""Projects (tenants), API tokens, and the datasets and models a project uploads.

Tokens are random 256-bit secrets shown once; only their SHA-256 is stored
(a fast hash is enough for high-entropy secrets; nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.storage.models import ROLES, ApiToken, Dataset, ModelArtifact, Project, new_id, utcnow

TOKEN_PREFIX = "ba_"
PREFIX_CHARS = 12  # shown in listings: "ba_" + 9 characters of the secret
TOUCH_INTERVAL = timedelta(seconds=60)  # last_used_at is written at most this often
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MSG_PROJECT_NAME = (
    "project: {name!r} is not a valid project name; use 1-100 letters, digits, '.', '_' "
    "or '-', starting with a letter or digit"
)


# Built once: the API runs these on every request, and building a statement costs more
# CPU than running a cached one (SQLAlchemy caches the compiled form, not the construct).
_TOKEN_BY_HASH = select(ApiToken).where(ApiToken.token_hash == bindparam("digest"))
# Batch lookups read plain columns (no ORM identity map): the API's group commit.
_TOKENS_BY_HASH = select(
    ApiToken.id,
    ApiToken.project,
    ApiToken.role,
    ApiToken.name,
    ApiToken.token_hash,
    ApiToken.revoked_at,
    ApiToken.last_used_at,
).where(ApiToken.token_hash.in_(bindparam("digests", expanding=True)))
_TOUCH_TOKENS = (
    update(ApiToken)
    .where(ApiToken.id.in_(bindparam("ids", expanding=True)))
    .values(last_used_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_DATASETS_BY_ID = select(
    Dataset.id, Dataset.project, Dataset.sha256, Dataset.columns, Dataset.column_levels
).where(Dataset.id.in_(bindparam("ids", expanding=True)), Dataset.deleted_at.is_(None))
_DATASET_BY_ID = select(Dataset).where(
    Dataset.id == bindparam("dataset_id"),
    Dataset.project == bindparam("project"),
    Dataset.deleted_at.is_(None),
)


class ProjectError(ValueError):
    """An invalid project name."""


def insert_ignore(session: Session, model: Any, *, index_elements: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` for the session's backend."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).on_conflict_do_nothing(index_elements=index_elements)


def ensure_project(*, session: Session, name: str) -> Project:
    """The project called ``name``, created if missing (safe when two callers race)."""
    if not isinstance(name, str) or not PROJECT_NAME.match(name):
        raise ProjectError(MSG_PROJECT_NAME.format(name=name))
    project = session.scalars(select(Project).where(Project.name == name)).one_or_none()
    if project is not None:
        return project
    session.execute(
        insert_ignore(session, Project, index_elements=["name"]).values(
            name=name, created_at=utcnow()
        )
    )
    return session.scalars(select(Project).where(Project.name == name)).one()


# ---------------------------------------------------------------- tokens


MAX_NAME = 200
MSG_NAME = "name: at most {n} printable characters, e.g. 'Ada Lovelace <ada@example.org>'"


def token_actor(token_id: int, role: str, name: str | None) -> str:
    """The person a token acts for: its ``name``, else ``token ID (ROLE)``."""
    return name or f"token {token_id} ({role})"


def same_person(a: str | None, b: str | None) -> bool:
    """True when two token names denote one person (case and spacing ignored).

    Unnamed tokens are nobody's: compare their ids instead.
    """
    if not a or not b:
        return False
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    *,
    session: Session,
    project: str,
    role: str,
    name: str | None = None,
    actor: str = "system",
) -> tuple[str, ApiToken]:
    """A new token for ``project`` with ``role`` held by the person ``name``; returns
    (plaintext, row). Logged as "key.created" by ``actor``.

    The plaintext exists only in the return value: show it once, it cannot be
    recovered later.
    """
    if role not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
    if name is not None:
        name = " ".join(name.split())
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise ValueError(MSG_NAME.format(n=MAX_NAME))
    ensure_project(session=session, name=project)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        project=project,
        role=role,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:PREFIX_CHARS],
    )
    session.add(token)
    session.flush()
    _log_key(session, token, "key.created", actor)
    return plaintext, token


def _log_key(session: Session, token: ApiToken, action: str, actor: str) -> None:
    from audit.storage.events import append_event  # events imports this module

    append_event(
        session=session,
        action=action,
        actor=actor,
        subject=f"key/{token.id}",
        project=token.project,
        detail={"name": token.name, "role": token.role, "prefix": token.prefix},
    )


_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{8,512}$")


def plausible_token(token: str) -> bool:
    """False for a string that no token of ours can be (checked before any work on a request).

    Tokens are ``ba_`` plus URL-safe base64; this says nothing about whether it is live.
    """
    return token.startswith(TOKEN_PREFIX) and _TOKEN_SHAPE.match(token) is not None


def _token_digest(token: object) -> str | None:
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    return hash_token(token)


def _live(row: Any, digest: str) -> bool:
    return (
        row is not None and hmac.compare_digest(row.token_hash, digest) and row.revoked_at is None
    )


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= TOUCH_INTERVAL


def verify_token(
    *, session: Session, token: str, touch: bool = True, now: datetime | None = None
) -> ApiToken | None:
    """The live token row for a presented bearer token, or None (unknown or revoked).

    The lookup is by hash (an attacker controls the input, not the hash), then
    the hashes are compared in constant time. ``touch`` records ``last_used_at``
    (at most once a minute, to keep reads cheap).
    """
    digest = _token_digest(token)
    if digest is None:
        return None
    row = session.scalars(_TOKEN_BY_HASH, {"digest": digest}).one_or_none()
    if row is None or not _live(row, digest):
        return None
    now = now or utcnow()
    if touch and _stale(row.last_used_at, now):
        row.last_used_at = now
        session.flush()
    return row


@dataclass(frozen=True)
class LiveToken:
    """A verified token as the group commit needs it: row id, project, role and person."""

    id: int
    project: str
    role: str
    name: str | None = None

    @property
    def actor(self) -> str:
        return token_actor(self.id, self.role, self.name)


def verify_tokens(
    *, session: Session, tokens: list[str], now: datetime | None = None
) -> list[LiveToken | None]:
    """:func:`verify_token` for many presented tokens in one query (the API's group commit).

    Returns one entry per presented token, in order: the live token, or None.
    ``last_used_at`` is written as by :func:`verify_token` (at most once a minute),
    in one ``UPDATE`` for the batch.
    """
    digests = [_token_digest(t) for t in tokens]
    wanted = sorted({d for d in digests if d is not None})
    rows = (
        {r.token_hash: r for r in session.execute(_TOKENS_BY_HASH, {"digests": wanted})}
        if wanted
        else {}
    )
    found: list[LiveToken | None] = []
    stale: set[int] = set()
    now = now or utcnow()
    for digest in digests:
        row = rows.get(digest) if digest is not None else None
        if row is None or digest is None or not _live(row, digest):
            found.append(None)
            continue
        found.append(LiveToken(row.id, row.project, row.role, row.name))
        if _stale(row.last_used_at, now):
            stale.add(row.id)
    if stale:
        session.execute(_TOUCH_TOKENS, {"ids": sorted(stale), "now": now})
    return found


def revoke_token(
    *,
    session: Session,
    project: str | None,
    token_id: int,
    now: datetime | None = None,
    actor: str = "system",
) -> bool:
    """Revoke a token (of ``project``, unless None); False when it does not exist or was
    already revoked. Logged as "key.revoked" by ``actor``."""
    conditions = [ApiToken.id == token_id, ApiToken.revoked_at.is_(None)]
    if project is not None:
        conditions.append(ApiToken.project == project)
    result = session.execute(
        update(ApiToken)
        .where(*conditions)
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    token = session.get(ApiToken, token_id)
    assert token is not None
    _log_key(session, token, "key.revoked", actor)
    return True


def list_tokens(*, session: Session, project: str | None) -> list[ApiToken]:
    """A project's tokens (every project's with None; hashes and prefixes only), oldest first."""
    query = select(ApiToken).order_by(ApiToken.id)
    if project is not None:
        query = query.where(ApiToken.project == project)
    return list(session.scalars(query))


# ---------------------------------------------------------------- datasets and models


def create_dataset(
    *,
    session: Session,
    project: str,
    sha256: str,
    path: str,
    rows: int,
    columns: list[str],
    size_bytes: int,
    filename: str | None = None,
    dataset_id: str | None = None,
    column_levels: dict[str, int] | None = None,
    etag: str | None = None,
) -> Dataset:
    """Register a stored dataset file for ``project``.

    ``column_levels``: distinct values per column, as counted at upload (capped);
    ``etag``: the object store's version tag of what was checked (ranged reads pin it).
    """
    ensure_project(session=session, name=project)
    dataset = Dataset(
        id=dataset_id or new_id(),
        project=project,
        sha256=sha256,
        path=path,
        rows=rows,
        columns=list(columns),
        column_levels=column_levels,
        size_bytes=size_bytes,
        filename=filename,
        etag=etag,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_datasets(
    *, session: Session, keys: list[tuple[str, str]], lock: bool = False
) -> dict[tuple[str, str], Any]:
    """Datasets by ``(project, dataset_id)`` in one query; keys not found are left out.

    The values are rows with ``id``, ``project``, ``sha256``, ``columns`` and
    ``column_levels`` (what a submission is checked against). ``lock``: ``FOR SHARE``
    (PostgreSQL, id order) until the transaction ends, so that an erasure
    (``FOR UPDATE``) waits for the submission's commit, then sees its audits."""
    ids = sorted({dataset_id for _, dataset_id in keys})
    if not ids:
        return {}
    query = _DATASETS_BY_ID.order_by(Dataset.id).with_for_update(read=True) if lock else None
    rows = session.execute(query if query is not None else _DATASETS_BY_ID, {"ids": ids})
    wanted = set(keys)
    return {(r.project, r.id): r for r in rows if (r.project, r.id) in wanted}


def get_dataset(
    *, session: Session, project: str, dataset_id: str, lock: bool = False
) -> Dataset | None:
    """A project's live dataset by id, or None (also for other projects' ids and for
    deleted ones: :func:`audit.storage.erasure.find_deleted` finds those). ``lock``:
    share-locked until the transaction ends (as :func:`get_datasets`)."""
    query = _DATASET_BY_ID.with_for_update(read=True) if lock else _DATASET_BY_ID
    return session.scalars(query, {"dataset_id": dataset_id, "project": project}).one_or_none()


def create_model(
    *,
    session: Session,
    project: str,
    kind: str,
    sha256: str,
    path: str,
    model_id: str | None = None,
    filename: str | None = None,
    size_bytes: int | None = None,
    files: int | None = None,
) -> ModelArtifact:
    """Register a stored model (file or folder) for ``project``."""
    ensure_project(session=session, name=project)
    model = ModelArtifact(
        id=model_id or new_id(),
        project=project,
        kind=kind,
        sha256=sha256,
        path=path,
        filename=filename,
        size_bytes=size_bytes,
        files=files,
    )
    session.add(model)
    session.flush()
    return model


def get_model(
    *, session: Session, project: str, model_id: str, lock: bool = False
) -> ModelArtifact | None:
    """A project's live model by id, or None (also when deleted); ``lock``: share-locked
    until the transaction ends (as :func:`get_datasets`)."""
    query = select(ModelArtifact).where(
        ModelArtifact.id == model_id,
        ModelArtifact.project == project,
        ModelArtifact.deleted_at.is_(None),
    )
    return session.scalars(query.with_for_update(read=True) if lock else query).one_or_none()
