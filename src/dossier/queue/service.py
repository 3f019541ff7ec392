"""Enqueueing work and declaring how each kind of task is handled.

``enqueue`` only adds a row to the caller's session: the task exists exactly when the caller's transaction
commits (transactional outbox). Handlers are registered per task kind with their retry policy, which is
data (attempts and a backoff schedule), not code paths.

Wake-ups: a session that enqueued sends ``NOTIFY dossier_tasks`` inside its own transaction on PostgreSQL
(delivered by the server on commit only), and signals workers of this process after commit on every
backend. Both only shorten the wait; workers poll regardless.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Insert, Table, case, delete, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction, aliased

from dossier.db.base import utcnow
from dossier.queue.models import FAILED, QUEUED, UNFINISHED, UNFINISHED_SQL, Task, owned_by
from dossier.settings import Settings

log = logging.getLogger("dossier.queue")

MAX_KEPT_ERRORS = 20
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
NOTIFY_CHANNEL = "dossier_tasks"
# Set in ``session.info`` by enqueue: this transaction added tasks, so its commit should wake workers.
ENQUEUED_FLAG = "dossier_enqueued"


class RetryLater(Exception):
    """Raised by a handler: try again after ``delay`` seconds (counts as an attempt).

    Without a delay the kind's backoff schedule decides. The reason is kept in the task's errors.
    """

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Snooze(Exception):
    """Raised by a handler: not now, run again after ``delay`` seconds (NOT counted as an attempt, no error
    kept). For work that is fine but must wait for something outside the task, e.g. a busy destination."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"snoozed for {delay:g} s")
        self.delay = delay


class PermanentFailure(Exception):
    """Raised by a handler: do not retry; the task ends ``failed`` with this error kept."""


@dataclass(frozen=True)
class WorkerResources:
    """What every handler may use; built once per worker process."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    http: Any  # dossier.net.OutboundClient (kept untyped here so the queue does not import the network layer)


@dataclass
class TaskRun:
    """One attempt at one task, as its handler sees it.

    ``attempt`` is 1-based and counts every claim, so a handler can tell a first try from a retry (or from a
    re-run after its previous worker died): handlers must be idempotent, delivery is at-least-once.
    """

    task_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    resources: WorkerResources
    worker_id: str = ""
    # Set by complete_in: the task row is deleted in the handler's own transaction.
    completed: bool = False

    async def complete_in(self, session: AsyncSession) -> bool:
        """Delete this task in the handler's transaction, so its work and its completion commit together
        (no re-run if the worker dies between the two). The handler must then return without raising.
        False when the claim is no longer ours (another worker took the task over): its outcome decides."""
        stmt = delete(Task).where(owned_by(self.task_id, self.worker_id, self.attempt))
        result = cast(CursorResult[Any], await session.execute(stmt))
        self.completed = True
        return result.rowcount == 1


Handler = Callable[[TaskRun], Awaitable[None]]


@dataclass(frozen=True)
class TaskKind:
    """A registered kind of task: its handler and retry policy."""

    name: str
    handler: Handler
    max_attempts: int
    backoff: tuple[float, ...]

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return self.backoff[min(max(attempt, 1) - 1, len(self.backoff) - 1)]


_KINDS: dict[str, TaskKind] = {}


def task_handler(
    kind: str, *, max_attempts: int = 5, backoff: Sequence[float] = DEFAULT_BACKOFF
) -> Callable[[Handler], Handler]:
    """Register the handler of a task kind. Handlers must be idempotent: delivery is at-least-once."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if not backoff or any(delay < 0 for delay in backoff):
        raise ValueError("backoff must be a non-empty sequence of non-negative delays")

    def register(handler: Handler) -> Handler:
        _KINDS[kind] = TaskKind(kind, handler, max_attempts, tuple(float(d) for d in backoff))
        return handler

    return register


def get_kind(kind: str) -> TaskKind | None:
    """The registration of ``kind`` in this process, if its module was imported."""
    return _KINDS.get(kind)


def registered_kinds() -> dict[str, TaskKind]:
    """A copy of the kinds registered in this process (by importing the task modules)."""
    return dict(_KINDS)


def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    delay: float | None = None,
    max_attempts: int | None = None,
    priority: int = 0,
    dedupe_key: str | None = None,
) -> Task:
    """Add a task to the caller's transaction; it becomes visible to workers when that commits.

    A ``dedupe_key`` already held by an unfinished task makes the flush fail with IntegrityError; use
    ``enqueue_unique`` when a duplicate is expected and should be skipped.
    """
    task = Task(**_row(kind, payload, run_at, delay, max_attempts, priority, dedupe_key))
    session.add(task)
    session.info[ENQUEUED_FLAG] = True
    return task


async def enqueue_unique(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    run_at: datetime | None = None,
    delay: float | None = None,
    max_attempts: int | None = None,
    priority: int = 0,
) -> int | None:
    """Enqueue unless an unfinished (queued or running) task holds ``dedupe_key``; returns the new id or None.

    ``INSERT ... ON CONFLICT DO NOTHING`` rather than catching IntegrityError: on PostgreSQL a failed
    statement would abort the caller's whole transaction.
    """
    values = _row(kind, payload, run_at, delay, max_attempts, priority, dedupe_key)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(Task)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Task.dedupe_key], index_where=text(UNFINISHED_SQL))
        .returning(Task.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is not None:
        session.info[ENQUEUED_FLAG] = True
    return new_id


async def enqueue_or_advance(
    session: AsyncSession, kind: str, payload: dict[str, Any], *, dedupe_key: str, run_at: datetime
) -> None:
    """Enqueue to run at ``run_at`` unless an unfinished task holds ``dedupe_key``; if one does, move it
    earlier when ``run_at`` is earlier (never later). One task per key then serves every caller, at the
    soonest moment any of them asked for (e.g. one retry sweep per webhook destination)."""
    values = _row(kind, payload, run_at, None, None, 0, dedupe_key)
    # Core, not the ORM: this runs in every transaction that emits a webhook event.
    connection = await session.connection()
    await connection.execute(_advance_statement(connection.dialect.name), values)
    session.info[ENQUEUED_FLAG] = True


@functools.cache
def _advance_statement(dialect: str) -> Insert:
    # Built once per dialect: making the ``excluded`` alias and the statement's cache key is most of the
    # cost of a small upsert.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(cast(Table, Task.__table__))
    earliest = case((stmt.excluded.run_at < Task.run_at, stmt.excluded.run_at), else_=Task.run_at)
    return stmt.on_conflict_do_update(
        index_elements=[Task.dedupe_key],
        index_where=text(UNFINISHED_SQL),
        set_={"run_at": earliest},
    )


def _row(
    kind: str,
    payload: dict[str, Any],
    run_at: datetime | None,
    delay: float | None,
    max_attempts: int | None,
    priority: int,
    dedupe_key: str | None,
) -> dict[str, Any]:
    when = run_at or utcnow()
    if delay:
        when += timedelta(seconds=delay)
    spec = _KINDS.get(kind)
    return {
        "kind": kind,
        "payload": payload,
        "status": QUEUED,
        "run_at": when,
        "priority": priority,
        "attempts": 0,
        "max_attempts": max_attempts or (spec.max_attempts if spec else 5),
        "dedupe_key": dedupe_key,
        "errors": [],
        "created_at": utcnow(),
    }


# --- wake-ups -------------------------------------------------------------------------------------------

_local_wakeups: set[Callable[[], None]] = set()


def add_local_wakeup(callback: Callable[[], None]) -> None:
    """Call ``callback`` after every commit in this process that enqueued (it must be thread-safe)."""
    _local_wakeups.add(callback)


def remove_local_wakeup(callback: Callable[[], None]) -> None:
    """Stop calling ``callback`` (a worker that stopped)."""
    _local_wakeups.discard(callback)


@event.listens_for(Session, "before_commit")
def _notify_in_transaction(session: Session) -> None:
    # NOTIFY is transactional: PostgreSQL delivers it when this transaction commits and drops it on rollback,
    # which is exactly "wake workers when the tasks become visible". Identical notifications in one
    # transaction are folded into one by the server. A savepoint's release is not the commit: wait for the
    # root transaction.
    if (
        session.info.get(ENQUEUED_FLAG)
        and not session.in_nested_transaction()
        and session.get_bind().dialect.name == "postgresql"
    ):
        session.connection().exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")


@event.listens_for(Session, "after_commit")
def _signal_local_workers(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released; the tasks are not visible until the root transaction commits
    if session.info.pop(ENQUEUED_FLAG, None):
        for callback in list(_local_wakeups):
            try:
                callback()
            except Exception:  # a wake-up is an optimisation; never fail the caller's commit over it
                log.exception("local wake-up failed")


@event.listens_for(Session, "after_transaction_end")
def _forget_when_the_transaction_ends(session: Session, transaction: SessionTransaction) -> None:
    # After a root rollback the tasks do not exist: a later transaction of this session must not signal for
    # them. (A savepoint rollback keeps the flag: the root may still commit other tasks; at worst one spurious
    # wake-up.)
    if transaction.parent is None:
        session.info.pop(ENQUEUED_FLAG, None)


# --- administration -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCount:
    """How many tasks of one kind are in one status, and the oldest one's run_at."""

    kind: str
    status: str
    count: int
    oldest_run_at: datetime | None


async def queue_stats(session: AsyncSession) -> list[QueueCount]:
    """Counts of the tasks table by kind and status (succeeded tasks are deleted, so they never appear)."""
    rows = await session.execute(
        select(Task.kind, Task.status, func.count(), func.min(Task.run_at))
        .group_by(Task.kind, Task.status)
        .order_by(Task.kind, Task.status)
    )
    return [QueueCount(kind, status, count, oldest) for kind, status, count, oldest in rows]


async def retry_failed(session: AsyncSession, *, kind: str | None = None, task_id: int | None = None) -> int:
    """Put failed tasks back in the queue with a fresh attempt budget (their errors are kept)."""
    holder = aliased(Task)
    # A failed task whose dedupe key an unfinished task holds again stays failed: requeueing it would
    # duplicate that work (and break the unique index).
    key_taken = (
        select(holder.id).where(holder.dedupe_key == Task.dedupe_key, holder.status.in_(UNFINISHED)).exists()
    )
    stmt = (
        update(Task)
        .where(Task.status == FAILED, ~key_taken)
        .values(status=QUEUED, attempts=0, run_at=utcnow(), finished_at=None, locked_by=None)
        .execution_options(synchronize_session=False)
    )
    if kind is not None:
        stmt = stmt.where(Task.kind == kind)
    if task_id is not None:
        stmt = stmt.where(Task.id == task_id)
    result = cast(CursorResult[Any], await session.execute(stmt))
    if result.rowcount:
        session.info[ENQUEUED_FLAG] = True
    return result.rowcount
