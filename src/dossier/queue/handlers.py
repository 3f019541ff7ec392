"""The handler registry: which kinds of task exist, how each is handled and retried, and what a handler
sees and may raise. Task modules register with ``@task_handler`` (``dossier.tasks_registry`` lists them).

A kind's retry policy is data (attempts and a backoff schedule), not code paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.queue import store
from dossier.settings import Settings

DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
# Attempts of a task whose kind is not registered in the process that enqueues it.
DEFAULT_MAX_ATTEMPTS = 5


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
        deleted = await store.delete_owned(session, self.task_id, self.worker_id, self.attempt)
        self.completed = True
        return deleted


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


def max_attempts_of(kind: str) -> int:
    """The registered attempt budget of ``kind`` (the default when the kind is unknown here)."""
    spec = _KINDS.get(kind)
    return spec.max_attempts if spec else DEFAULT_MAX_ATTEMPTS
