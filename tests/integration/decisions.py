"""A PostgreSQL decisions database for ``dataset.source`` schedules in integration tests.

Created through the admin connection, dropped afterwards. Services read it as
the server-configured source ``hiring`` (``BIASAUDIT_SOURCE_HIRING_URL``).
Rows are written with exact counts, so a test knows every rate it plants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from tests.conftest import scratch_database, sqlalchemy_url

QUERY = (
    "select sex, advanced from decisions "
    "where decided_at >= :window_start and decided_at < :window_end"
)


@contextmanager
def decisions_database() -> Iterator[tuple[str, str]]:
    """(psycopg URL, SQLAlchemy URL) of a fresh database with an empty ``decisions`` table."""
    with scratch_database("biasaudit_it_src") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create table decisions (decided_at timestamptz, sex text, advanced int)")
        yield url, sqlalchemy_url(url)


def insert_decisions(url: str, at: datetime, groups: dict[str, tuple[int, int]]) -> None:
    """``groups``: sex -> (rows, advanced among them), all decided at ``at``."""
    rows = [(at, sex, int(i < selected)) for sex, (n, selected) in groups.items() for i in range(n)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany("insert into decisions values (%s, %s, %s)", rows)


def source_spec(name: str) -> dict[str, Any]:
    """A hiring audit of the decisions in the run's window (selection rates by sex)."""
    return {
        "name": name,
        "domain": "hiring",
        "dataset": {
            "source": "hiring",
            "query": QUERY,
            "prediction": "advanced",
            "protected": ["sex"],
        },
        "probes": [{"kind": "demographic"}],
    }
