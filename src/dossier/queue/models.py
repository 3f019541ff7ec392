"""The one durable work queue: a `tasks` table, claimed with SKIP LOCKED, leased, retried as data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Index, Integer, String, and_, text
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, BigIntPK, JSONType, utcnow

QUEUED = "queued"
RUNNING = "running"
FAILED = "failed"
# A task is unfinished while it may still run; succeeded tasks are deleted, failed ones stay.
UNFINISHED = (QUEUED, RUNNING)
# The predicate of the partial unique index on dedupe_key, as literal SQL: an ON CONFLICT clause must repeat
# it word for word (with bound parameters PostgreSQL cannot match it once it plans the statement generically).
UNFINISHED_SQL = "status IN ('queued', 'running')"


def owned_by(task_id: int, worker_id: str, attempts: int) -> ColumnElement[bool]:
    """The claim of ``task_id`` that ``worker_id`` made as attempt ``attempts``: every write that ends or
    renews a claim is guarded by it, so a worker whose claim was taken over can never overwrite the new
    owner's state (the attempt number tells this claim from a later one by the same worker id)."""
    return and_(
        Task.id == task_id,
        Task.locked_by == worker_id,
        Task.attempts == attempts,
        Task.status == RUNNING,
    )


class Task(Base):
    """One unit of background work. Succeeded tasks are deleted; failed ones stay, with their errors."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_due", "status", "run_at"),
        Index("ix_tasks_lease", "status", "lease_expires_at"),
        # Idempotent enqueue: at most one UNFINISHED task per key, so a failed task does not block the key.
        Index(
            "uq_tasks_dedupe_key",
            "dedupe_key",
            unique=True,
            postgresql_where=text(UNFINISHED_SQL),
            sqlite_where=text(UNFINISHED_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An advance (queue.service.enqueue_or_advance) moves run_at earlier, but never before this: a task held
    # until then (e.g. the sweep of a destination that just failed a whole batch) is not woken by every
    # caller meanwhile.
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    # Claims so far (a claim whose worker died counts; a release at graceful shutdown does not).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # The worker holding the task and until when; another worker may take it once the lease has expired.
    locked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # The error of each failed try, newest last, bounded (see queue.service.MAX_KEPT_ERRORS).
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkerPresence(Base):
    """A running worker process and when it last said so: `/readyz` and `dossier_workers_alive` read it.

    A worker writes its row at start and on every heartbeat, and deletes it when it stops cleanly; a row
    not refreshed for a day (its process died) is deleted by the next heartbeat of any worker."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
