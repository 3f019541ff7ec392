"""Enqueueing work and declaring how each kind of task is handled.

``enqueue`` only adds a row to the caller's session: the task exists exactly when the caller's transaction
commits (transactional outbox). Handlers are registered per task kind with their retry policy, which is
data (attempts and a backoff schedule), not code paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.base import utcnow
from dossier.queue.models import QUEUED, Task
from dossier.settings import Settings

MAX_KEPT_ERRORS = 20
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)


class RetryLater(Exception):
    """Raised by a handler: try again after ``delay`` seconds (counts as an attempt)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class PermanentFailure(Exception):
    """Raised by a handler: do not retry; the task ends ``failed``."""


@dataclass(frozen=True)
class WorkerResources:
    """What every handler may use; built once per worker process."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    http: Any  # dossier.net.OutboundClient (kept untyped here so the queue does not import the network layer)


@dataclass(frozen=True)
class TaskRun:
    """One attempt at one task, as its handler sees it."""

    task_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    resources: WorkerResources


Handler = Callable[[TaskRun], Awaitable[None]]


@dataclass(frozen=True)
class TaskKind:
    name: str
    handler: Handler
    max_attempts: int
    backoff: tuple[float, ...]

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return self.backoff[min(attempt - 1, len(self.backoff) - 1)]


_KINDS: dict[str, TaskKind] = {}


def task_handler(
    kind: str, *, max_attempts: int = 5, backoff: Sequence[float] = DEFAULT_BACKOFF
) -> Callable[[Handler], Handler]:
    """Register the handler of a task kind. Handlers must be idempotent: delivery is at-least-once."""

    def register(handler: Handler) -> Handler:
        _KINDS[kind] = TaskKind(kind, handler, max_attempts, tuple(backoff))
        return handler

    return register


def registered_kinds() -> dict[str, TaskKind]:
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
    """Add a task to the caller's transaction; it becomes visible to workers when that commits."""
    when = run_at or utcnow()
    if delay:
        when += timedelta(seconds=delay)
    spec = _KINDS.get(kind)
    task = Task(
        kind=kind,
        payload=payload,
        status=QUEUED,
        run_at=when,
        priority=priority,
        max_attempts=max_attempts or (spec.max_attempts if spec else 5),
        dedupe_key=dedupe_key,
        errors=[],
    )
    session.add(task)
    session.info["dossier_enqueued"] = True
    return task
