"""Tracked companies (001's "projects") and their analyses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, JSONType, new_uuid, utcnow

# Analysis statuses.
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"


class TrackedCompany(Base):
    """A company moving through an account's investment pipeline."""

    __tablename__ = "tracked_companies"
    __table_args__ = (Index("ix_tracked_companies_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(500), default=None)
    status: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Analysis(Base):
    """One run of entity resolution, firmographics and the website tool for a tracked company."""

    __tablename__ = "analyses"
    # Retention walks finished analyses by completion.
    __table_args__ = (Index("ix_analyses_status_completed", "status", "completed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    company_id: Mapped[str] = mapped_column(
        ForeignKey("tracked_companies.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # The resolved registry kernel_id (001's kruncherEntityCompanyId), or None.
    kernel_id: Mapped[str | None] = mapped_column(String(40), default=None)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
