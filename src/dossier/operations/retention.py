"""Automatic retention: what is deleted, per kind of data, in bounded batches (docs/operations.md).

Each batch is one short transaction deleting at most ``retention_batch_size`` rows of one kind (a delivery
counts with its attempts); the task pauses between batches, so the transactions of live traffic never queue
behind a long delete. Pending deliveries, unfinished jobs and analyses, and queued or running tasks are never
touched, whatever their age.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier import metrics
from dossier.db.base import utcnow
from dossier.jobs.models import FINAL as JOB_FINAL
from dossier.jobs.models import Job
from dossier.pipeline.models import COMPLETED as ANALYSIS_COMPLETED
from dossier.pipeline.models import FAILED as ANALYSIS_FAILED
from dossier.pipeline.models import Analysis
from dossier.queue.models import FAILED as TASK_FAILED
from dossier.queue.models import Task
from dossier.settings import Settings
from dossier.webhooks import history
from dossier.webhooks.models import FAILED, SUCCEEDED

# The kinds of data, in the order a run prunes them (events last: they lose their deliveries first).
KINDS = ("deliveries_succeeded", "deliveries_failed", "events", "jobs", "analyses", "failed_tasks")

Batch = Callable[[AsyncSession, datetime, int], Awaitable[int]]


async def _delivered(session: AsyncSession, before: datetime, limit: int) -> int:
    deliveries, attempts = await history.prune_deliveries(
        session, statuses=(SUCCEEDED,), before=before, limit=limit
    )
    metrics.RETENTION_DELETED.labels("attempts").inc(attempts)
    return deliveries


async def _failed(session: AsyncSession, before: datetime, limit: int) -> int:
    deliveries, attempts = await history.prune_deliveries(
        session, statuses=(FAILED,), before=before, limit=limit
    )
    metrics.RETENTION_DELETED.labels("attempts").inc(attempts)
    return deliveries


async def _events(session: AsyncSession, before: datetime, limit: int) -> int:
    return await history.prune_orphan_events(session, before=before, limit=limit)


async def _delete_ids(session: AsyncSession, model: Any, where: list[Any], limit: int) -> int:
    ids = list(await session.scalars(select(model.id).where(*where).limit(limit)))
    if not ids:
        return 0
    result = cast(
        CursorResult[Any],
        await session.execute(
            delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount


async def _jobs(session: AsyncSession, before: datetime, limit: int) -> int:
    return await _delete_ids(session, Job, [Job.status.in_(JOB_FINAL), Job.completed_at < before], limit)


async def _analyses(session: AsyncSession, before: datetime, limit: int) -> int:
    finished = Analysis.status.in_((ANALYSIS_COMPLETED, ANALYSIS_FAILED))
    return await _delete_ids(session, Analysis, [finished, Analysis.completed_at < before], limit)


async def _failed_tasks(session: AsyncSession, before: datetime, limit: int) -> int:
    return await _delete_ids(session, Task, [Task.status == TASK_FAILED, Task.finished_at < before], limit)


BATCHES: dict[str, Batch] = {
    "deliveries_succeeded": _delivered,
    "deliveries_failed": _failed,
    "events": _events,
    "jobs": _jobs,
    "analyses": _analyses,
    "failed_tasks": _failed_tasks,
}


def keep_days(settings: Settings) -> dict[str, float]:
    """Days each kind is kept (0: kept for ever)."""
    return {
        "deliveries_succeeded": settings.retention_delivered_days,
        "deliveries_failed": settings.retention_failed_days,
        "events": settings.retention_events_days,
        "jobs": settings.retention_jobs_days,
        "analyses": settings.retention_analyses_days,
        "failed_tasks": settings.retention_failed_tasks_days,
    }


@dataclass
class RetentionRun:
    """What one run deleted, per kind, and whether it stopped on its time budget with work left."""

    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    batches: int = 0
    unfinished: bool = False


async def prune_all(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    budget_seconds: float = 60.0,
) -> RetentionRun:
    """Delete what every kind's retention allows, batch by batch, for at most ``budget_seconds``."""
    now = now or utcnow()
    deadline = time.monotonic() + budget_seconds
    run = RetentionRun()
    limit = settings.retention_batch_size
    for kind, days in keep_days(settings).items():
        if days <= 0:
            continue
        before = now - timedelta(days=days)
        while True:
            if time.monotonic() >= deadline:
                run.unfinished = True
                return run
            async with maker() as session, session.begin():
                deleted = await BATCHES[kind](session, before, limit)
            run.batches += 1
            run.deleted[kind] += deleted
            metrics.RETENTION_DELETED.labels(kind).inc(deleted)
            if deleted < limit:
                break
            await asyncio.sleep(settings.retention_batch_pause)
    return run
