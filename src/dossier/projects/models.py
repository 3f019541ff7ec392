from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, BigIntPK, JSONType, new_uuid, utcnow

INPUT_STATUS = "default"
PENDING = "pending"
RUNNING = "running"
SUCCESS = "success"
ERROR = "error"
SKIPPED = "skipped"
FINAL_STATUSES = frozenset({INPUT_STATUS, SUCCESS, ERROR, SKIPPED})


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    creator_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Column(Base):
    """An input column, or (with ``tool_type`` set) a tool column that fills itself in."""

    __tablename__ = "columns"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_columns_project_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer)
    tool_type: Mapped[str | None] = mapped_column(String(64), default=None)
    tool_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    tool_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_tool(self) -> bool:
        return self.tool_type is not None


class Row(Base):
    __tablename__ = "rows"
    __table_args__ = (Index("ix_rows_project_pk", "project_id", "pk"),)

    # Insertion order: rows are listed by this key.
    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(20), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cell(Base):
    """(row, column): the value and, for tool columns, where its run stands."""

    __tablename__ = "cells"

    row_pk: Mapped[int] = mapped_column(ForeignKey("rows.pk", ondelete="CASCADE"), primary_key=True)
    column_id: Mapped[str] = mapped_column(
        ForeignKey("columns.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=INPUT_STATUS)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Which scheduled run owns a tool cell: a task carrying another token is stale and leaves it alone.
    run_token: Mapped[str | None] = mapped_column(String(16), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
