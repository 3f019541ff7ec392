"""The queue's store: every SQL statement on the tasks table, and nothing else.

Every state change of a claimed task is one short statement guarded by ownership (``locked_by`` and the
attempt number the claim produced), so a worker whose lease was taken over (it stalled, another worker
reclaimed the task) can never overwrite the new owner's state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Insert,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from dossier.db.base import as_utc, utcnow
from dossier.queue.models import (
    FAILED,
    QUEUED,
    RUNNING,
    UNFINISHED,
    UNFINISHED_SQL,
    Task,
    WorkerPresence,
    owned_by,
)
from dossier.queue.wakeups import mark_enqueued

tasks_table = cast(Table, Task.__table__)
_T = tasks_table.c
Maker = async_sessionmaker[AsyncSession]


# --- adding tasks ----------------------------------------------------------------------------------------


async def insert_unless_held(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert a task row unless an unfinished task holds its dedupe key; the new id, or None.

    ``INSERT ... ON CONFLICT DO NOTHING`` rather than catching IntegrityError: on PostgreSQL a failed
    statement would abort the caller's whole transaction.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(Task)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Task.dedupe_key], index_where=text(UNFINISHED_SQL))
        .returning(Task.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_or_advance(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert a task row, or move the unfinished task holding its dedupe key earlier (never later, and never
    before that task's ``not_before``)."""
    # Core, not the ORM: this runs in every transaction that emits a webhook event.
    connection = await session.connection()
    await connection.execute(_advance_statement(connection.dialect.name), values)


@functools.cache
def _advance_statement(dialect: str) -> Insert:
    # Built once per dialect: making the ``excluded`` alias and the statement's cache key is most of the
    # cost of a small upsert.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(cast(Table, Task.__table__))
    # The earlier of the two, but not before the held task's not_before (NULL: no hold; a held task's run_at
    # is never before its not_before, so keeping run_at keeps the hold).
    asked = stmt.excluded.run_at
    held = case((Task.not_before > asked, Task.not_before), else_=asked)
    earliest = case((asked < Task.run_at, held), else_=Task.run_at)
    return stmt.on_conflict_do_update(
        index_elements=[Task.dedupe_key],
        index_where=text(UNFINISHED_SQL),
        set_={"run_at": earliest},
    )


async def delete_owned(session: AsyncSession, task_id: int, worker_id: str, attempt: int) -> bool:
    """Delete a task in the caller's transaction if this claim still owns it."""
    stmt = delete(Task).where(owned_by(task_id, worker_id, attempt))
    result = cast(CursorResult[Any], await session.execute(stmt))
    return result.rowcount == 1


# --- claiming and settling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A task this worker holds: the claim's attempt number is part of its identity (see ``_owned``)."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    errors: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def _claim_statement(dialect: str) -> Any:
    # Built once per dialect: a busy worker claims many times a second, and building the statement would
    # cost more CPU than running it.
    now = bindparam("now", type_=_T.run_at.type)
    due = (
        select(_T.id)
        .where(
            or_(
                and_(_T.status == QUEUED, _T.run_at <= now),
                and_(_T.status == RUNNING, _T.lease_expires_at < now),
            )
        )
        .order_by(_T.priority.desc(), _T.run_at, _T.id)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        update(tasks_table)
        .where(_T.id.in_(due))
        .values(
            status=RUNNING,
            locked_by=bindparam("worker_id"),
            lease_expires_at=bindparam("lease_until", type_=_T.lease_expires_at.type),
            attempts=_T.attempts + 1,
        )
        .returning(_T.id, _T.kind, _T.payload, _T.attempts, _T.max_attempts, _T.errors)
    )


async def claim_batch(
    maker: Maker, *, worker_id: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[Claimed]:
    """Claim up to ``limit`` due tasks in ONE statement: queued and due, or running with an expired lease.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent workers claim disjoint batches without waiting.
    SQLite: every transaction starts with BEGIN IMMEDIATE (db.engine), so claims are serialised by the
    single writer lock and the UPDATE ... RETURNING is atomic.
    """
    now = now or utcnow()
    async with maker() as session, session.begin():
        stmt = _claim_statement(session.get_bind().dialect.name)
        params = {
            "now": now,
            "limit": limit,
            "worker_id": worker_id,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        rows = (await session.execute(stmt, params)).all()
    return [
        Claimed(
            row.id, row.kind, dict(row.payload or {}), row.attempts, row.max_attempts, list(row.errors or [])
        )
        for row in rows
    ]


def _owned(claim: Claimed, worker_id: str) -> Any:
    return owned_by(claim.id, worker_id, claim.attempts)


async def _execute_rowcount(maker: Maker, stmt: Any) -> int:
    async with maker() as session, session.begin():
        result = cast(CursorResult[Any], await session.execute(stmt))
        return result.rowcount


async def complete(maker: Maker, claim: Claimed, worker_id: str) -> bool:
    """Delete a succeeded task (the table holds only unfinished and failed work); False if no longer ours."""
    return await _execute_rowcount(maker, delete(tasks_table).where(_owned(claim, worker_id))) == 1


async def reschedule(
    maker: Maker, claim: Claimed, worker_id: str, *, errors: list[dict[str, Any]], run_at: datetime
) -> bool:
    """Back to the queue for another attempt at ``run_at``, with this attempt's error recorded."""
    stmt = (
        update(tasks_table)
        .where(_owned(claim, worker_id))
        .values(status=QUEUED, run_at=run_at, locked_by=None, lease_expires_at=None, errors=errors)
    )
    return await _execute_rowcount(maker, stmt) == 1


async def snooze(maker: Maker, claim: Claimed, worker_id: str, *, run_at: datetime) -> bool:
    """Back to the queue until ``run_at``, the claim not counted (the handler asked to wait; no failure)."""
    stmt = (
        update(tasks_table)
        .where(_owned(claim, worker_id))
        .values(status=QUEUED, run_at=run_at, locked_by=None, lease_expires_at=None, attempts=_T.attempts - 1)
    )
    return await _execute_rowcount(maker, stmt) == 1


async def fail(maker: Maker, claim: Claimed, worker_id: str, *, errors: list[dict[str, Any]]) -> bool:
    """Terminal ``failed``: kept with its errors for inspection and ``dossier queue retry``."""
    stmt = (
        update(tasks_table)
        .where(_owned(claim, worker_id))
        .values(status=FAILED, locked_by=None, lease_expires_at=None, errors=errors, finished_at=utcnow())
    )
    return await _execute_rowcount(maker, stmt) == 1


async def release(maker: Maker, claims: Sequence[Claimed], worker_id: str) -> int:
    """Give tasks back unrun (graceful shutdown): queued, lease cleared, the attempt not counted."""
    if not claims:
        return 0
    stmt = (
        update(tasks_table)
        .where(
            _T.locked_by == worker_id,
            _T.status == RUNNING,
            or_(*(and_(_T.id == c.id, _T.attempts == c.attempts) for c in claims)),
        )
        .values(status=QUEUED, locked_by=None, lease_expires_at=None, attempts=_T.attempts - 1)
    )
    return await _execute_rowcount(maker, stmt)


async def extend_leases(
    maker: Maker, ids: Sequence[int], worker_id: str, *, lease_seconds: float
) -> set[int]:
    """Renew the leases of every task in hand in one statement; returns the ids still ours.

    Rows another transaction has locked (a handler finishing its task, a retry being scheduled onto it)
    are skipped rather than waited for, so a heartbeat never joins a lock cycle; they are still ours if the
    database says so, and the next heartbeat renews them.
    """
    if not ids:
        return set()
    mine = and_(_T.id.in_(list(ids)), _T.locked_by == worker_id, _T.status == RUNNING)
    async with maker() as session, session.begin():
        free = select(_T.id).where(mine)
        if session.get_bind().dialect.name == "postgresql":
            free = free.with_for_update(skip_locked=True)
        result = await session.execute(
            update(tasks_table)
            .where(_T.id.in_(free))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            .returning(_T.id)
        )
        renewed = set(result.scalars())
        if len(renewed) < len(ids):
            renewed |= set(await session.scalars(select(_T.id).where(mine, _T.id.not_in(renewed))))
        return renewed


def _wakeup_statement() -> Any:
    after = bindparam("after", type_=_T.run_at.type)
    due = select(func.min(_T.run_at)).where(_T.status == QUEUED, _T.run_at > after).scalar_subquery()
    expiry = (
        select(func.min(_T.lease_expires_at))
        .where(_T.status == RUNNING, _T.lease_expires_at > after)
        .scalar_subquery()
    )
    # Aggregates over a TypeDecorator column come back raw on SQLite (naive strings): see as_utc below.
    return select(due.label("due"), expiry.label("expiry"))


_WAKEUP_STATEMENT = _wakeup_statement()


async def next_wakeup_at(maker: Maker, *, after: datetime) -> datetime | None:
    """The earliest future moment a task becomes claimable: a delayed task comes due or a lease runs out."""
    async with maker() as session, session.begin():
        row = (await session.execute(_WAKEUP_STATEMENT, {"after": after})).one()
    moments = [as_utc(value) for value in row if value is not None]
    return min(moments) if moments else None


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
        mark_enqueued(session)
    return result.rowcount


# --- worker presence ------------------------------------------------------------------------------------

# A presence row not refreshed for this long belongs to a process that died without saying goodbye.
PRESENCE_FORGOTTEN_AFTER = timedelta(days=1)


async def beat(maker: Maker, worker_id: str, *, started_at: datetime) -> None:
    """Say that ``worker_id`` is alive now (insert or refresh its row); forget long-dead workers."""
    now = utcnow()
    async with maker() as session, session.begin():
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(WorkerPresence).values(id=worker_id, started_at=started_at, last_seen_at=now)
        await session.execute(
            stmt.on_conflict_do_update(index_elements=[WorkerPresence.id], set_={"last_seen_at": now})
        )
        await session.execute(
            delete(WorkerPresence).where(WorkerPresence.last_seen_at < now - PRESENCE_FORGOTTEN_AFTER)
        )


async def forget(maker: Maker, worker_id: str) -> None:
    """Remove a stopping worker's presence row."""
    async with maker() as session, session.begin():
        await session.execute(delete(WorkerPresence).where(WorkerPresence.id == worker_id))


async def workers_seen_since(session: AsyncSession, since: datetime) -> int:
    """How many workers' heartbeats were seen at or after ``since``."""
    count = await session.scalar(
        select(func.count()).select_from(WorkerPresence).where(WorkerPresence.last_seen_at >= since)
    )
    return int(count or 0)


@dataclass(frozen=True)
class QueueSnapshot:
    """What the metrics read of the queue at scrape time."""

    counts: list[tuple[str, str, int]]  # (kind, state, count); state waiting | running | failed
    oldest_due_age: float


async def queue_snapshot(session: AsyncSession, *, now: datetime | None = None) -> QueueSnapshot:
    """Tasks by kind and state, and the age of the oldest due unclaimed task (seconds)."""
    now = now or utcnow()
    names = {QUEUED: "waiting", RUNNING: "running", FAILED: "failed"}
    rows = await session.execute(
        select(Task.kind, Task.status, func.count()).group_by(Task.kind, Task.status)
    )
    counts = [(kind, names.get(status, status), int(count)) for kind, status, count in rows]
    oldest = await session.scalar(
        select(func.min(Task.run_at)).where(Task.status == QUEUED, Task.run_at <= now)
    )
    age = max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
    return QueueSnapshot(counts=counts, oldest_due_age=age)
