"""The jobs table: one row per entity-resolution or firmographics request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, JSONType, new_uuid, utcnow

ENTITY_RESOLUTION = "entity-resolution"
FIRMOGRAPHICS = "firmographics"
KINDS = (ENTITY_RESOLUTION, FIRMOGRAPHICS)

# 003's job statuses.
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
FINAL = (COMPLETED, FAILED)


class Job(Base):
    """A job of an account: its input, where it is, and its result (``record``) or why it failed."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_account_created", "account_id", "created_at"),
        # Retention walks finished jobs by completion.
        Index("ix_jobs_status_completed", "status", "completed_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # The request as received ({legal_name, website, country} or {kernel_id}), without webhook_url.
    input: Mapped[dict[str, Any]] = mapped_column(JSONType)
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    record: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
