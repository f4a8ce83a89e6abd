"""Monitoring tables: ``alerts`` (a scheduled run moved) and ``alert_deliveries``.

An alert is raised when a scheduled audit's verdict differs from the
schedule's previous run or its baseline, or when a metric moved significantly
(``audit.compare``). Each alert of a schedule with a webhook gets one delivery
row per attempt: the status code or the error, and when it was tried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.storage.models import Base, new_id, utcnow


class Alert(Base):
    """One alert: which schedule and audit, what kind, and the comparison behind it."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "project", "created_at"), Index(None, "schedule_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(
        String(100), ForeignKey("projects.name", ondelete="CASCADE")
    )
    schedule_id: Mapped[str] = mapped_column(String(36))
    audit_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # delivery state: None = no webhook; "pending", "delivered", "failed" (gave up)
    delivery: Mapped[str | None] = mapped_column(String(16), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # a worker delivering the alert holds it until then (never two deliveries at once)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)


class AlertDelivery(Base):
    """One attempt to POST an alert to its schedule's webhook."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
