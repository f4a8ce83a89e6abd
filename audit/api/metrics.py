"""Prometheus metrics for ``GET /metrics``.

Job metrics are read from the record (PostgreSQL) and the broker on every
scrape, so every API replica reports the same truth and nothing is lost on
restart:

- ``biasaudit_audits{status}``: audits per status;
- ``biasaudit_audit_duration_seconds``: histogram of run time
  (``finished_at - started_at``) of succeeded and failed audits;
- ``biasaudit_audit_attempts{status}``: attempts summed per status, and
  ``biasaudit_audits_retried``: audits that needed more than one attempt;
- ``biasaudit_queue_depth{queue}``: messages waiting in each broker queue;
- ``biasaudit_oldest_queued_age_seconds``: age of the oldest queued audit;
- ``biasaudit_metrics_scrape_errors{source}``: 1 when the database or broker
  could not be read on this scrape.

This process's own HTTP traffic is counted in
``biasaudit_http_requests_total`` and ``biasaudit_http_request_duration_seconds``,
and its submission batches (:mod:`audit.api.group_commit`) in
``biasaudit_submit_batch_size`` and ``biasaudit_submit_batch_seconds``.
Each app has its own registry (no global state between app instances).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.exc import SQLAlchemyError

from audit.queue import QUEUES, queue_depths
from audit.settings import Settings
from audit.storage.db import session_scope
from audit.storage.models import AUDIT_STATUSES, Audit, utcnow

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


def _duration_expr(dialect: str) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", Audit.finished_at - Audit.started_at)
    return (func.julianday(Audit.finished_at) - func.julianday(Audit.started_at)) * 86400.0


class JobCollector(Collector):
    """Reads audit and queue state at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _db_metrics(self) -> Iterator[Any]:
        with session_scope(self.settings.db_url) as session:
            dialect = session.get_bind().dialect.name
            by_status = dict(
                session.execute(select(Audit.status, func.count()).group_by(Audit.status)).all()
            )
            attempts = dict(
                session.execute(
                    select(Audit.status, func.coalesce(func.sum(Audit.attempts), 0)).group_by(
                        Audit.status
                    )
                ).all()
            )
            retried = session.scalar(select(func.count()).where(Audit.attempts > 1)) or 0
            oldest = session.scalar(
                select(func.min(Audit.created_at)).where(Audit.status == "queued")
            )
            duration = _duration_expr(dialect)
            finished = and_(
                Audit.status.in_(("succeeded", "failed")),
                Audit.started_at.is_not(None),
                Audit.finished_at.is_not(None),
            )
            columns: list[Any] = [
                func.sum(case((duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS
            ]
            columns += [func.count(), func.coalesce(func.sum(duration), literal(0.0))]
            row = session.execute(select(*columns).where(finished)).one()
        g = GaugeMetricFamily("biasaudit_audits", "Audits per status", labels=["status"])
        for status in AUDIT_STATUSES:
            g.add_metric([status], float(by_status.get(status, 0)))
        yield g
        a = GaugeMetricFamily(
            "biasaudit_audit_attempts", "Attempts summed over audits, per status", labels=["status"]
        )
        for status in AUDIT_STATUSES:
            a.add_metric([status], float(attempts.get(status, 0) or 0))
        yield a
        yield GaugeMetricFamily(
            "biasaudit_audits_retried", "Audits that needed more than one attempt", value=retried
        )
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        yield GaugeMetricFamily(
            "biasaudit_oldest_queued_age_seconds", "Age of the oldest queued audit", value=age
        )
        cumulative = [float(v or 0) for v in row[: len(DURATION_BUCKETS)]]
        count, total = float(row[-2] or 0), float(row[-1] or 0.0)
        buckets = [(str(b), c) for b, c in zip(DURATION_BUCKETS, cumulative)]
        buckets.append(("+Inf", count))
        yield HistogramMetricFamily(
            "biasaudit_audit_duration_seconds",
            "Run time of finished audits (started_at to finished_at)",
            buckets=buckets,
            sum_value=total,
        )

    def collect(self) -> Iterator[Any]:
        errors = GaugeMetricFamily(
            "biasaudit_metrics_scrape_errors",
            "1 when a source could not be read on this scrape",
            labels=["source"],
        )
        try:
            yield from self._db_metrics()
            errors.add_metric(["database"], 0.0)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable: %s", type(exc).__name__)
            errors.add_metric(["database"], 1.0)
        try:
            depths = queue_depths(self.settings.broker_url) if self.settings.broker_url else {}
            q = GaugeMetricFamily(
                "biasaudit_queue_depth", "Messages waiting per broker queue", labels=["queue"]
            )
            for name in QUEUES:
                q.add_metric([name], float(depths.get(name, 0)))
            yield q
            errors.add_metric(["broker"], 0.0 if self.settings.broker_url else 1.0)
        except Exception as exc:  # the scrape reports, it does not fail
            log.warning("metrics: broker unavailable: %s", type(exc).__name__)
            errors.add_metric(["broker"], 1.0)
        yield errors


class Metrics:
    """One app's registry: job state at scrape time, plus this process's HTTP counters."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(JobCollector(settings))
        self.requests = Counter(
            "biasaudit_http_requests",
            "HTTP requests handled by this API process",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "biasaudit_http_request_duration_seconds",
            "HTTP request latency in this API process",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.submit_batch = Histogram(
            "biasaudit_submit_batch_size",
            "Submissions per group-commit batch (one transaction and one publish each)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.submit_batch_seconds = Histogram(
            "biasaudit_submit_batch_seconds",
            "Time of one group-commit batch in the database thread (lookups, insert, "
            "commit, publish)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        """One group-commit batch (called from its database thread; prometheus is thread-safe)."""
        self.submit_batch.observe(size)
        self.submit_batch_seconds.observe(seconds)
