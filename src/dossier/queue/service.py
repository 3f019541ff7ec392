"""Enqueueing work: the API every domain uses to add tasks.

``enqueue`` only adds a row to the caller's session: the task exists exactly when the caller's transaction
commits (transactional outbox), and that commit wakes the workers (``wakeups``). The rest of the queue:
``store`` (every SQL statement), ``handlers`` (the registry of task kinds), ``worker`` (the loop).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.queue import store
from dossier.queue.handlers import max_attempts_of
from dossier.queue.models import QUEUED, Task
from dossier.queue.wakeups import mark_enqueued


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
    mark_enqueued(session)
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
    """Enqueue unless an unfinished (queued or running) task holds ``dedupe_key``; the new id, or None."""
    new_id = await store.insert_unless_held(
        session, _row(kind, payload, run_at, delay, max_attempts, priority, dedupe_key)
    )
    if new_id is not None:
        mark_enqueued(session)
    return new_id


async def enqueue_or_advance(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    run_at: datetime,
    not_before: datetime | None = None,
    priority: int = 0,
) -> None:
    """Enqueue to run at ``run_at`` unless an unfinished task holds ``dedupe_key``; if one does, move it
    earlier when ``run_at`` is earlier (never later). One task per key then serves every caller, at the
    soonest moment any of them asked for (e.g. one retry sweep per webhook destination).

    ``not_before`` holds a new task: later advances move it no earlier than that (an existing task keeps
    its own hold). ``priority``: among due tasks, higher ones are claimed first (a new task's)."""
    row = _row(kind, payload, run_at, None, None, priority, dedupe_key)
    if not_before is not None:
        row["run_at"] = max(row["run_at"], not_before)
    row["not_before"] = not_before
    await store.insert_or_advance(session, row)
    mark_enqueued(session)


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
    return {
        "kind": kind,
        "payload": payload,
        "status": QUEUED,
        "run_at": when,
        "priority": priority,
        "attempts": 0,
        "max_attempts": max_attempts or max_attempts_of(kind),
        "dedupe_key": dedupe_key,
        "errors": [],
        "created_at": utcnow(),
    }
