"""The cluster's one retention task: `operations.retention`, on the work queue, again every
``retention_interval`` seconds (its dedupe key keeps it one in the whole cluster)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.operations.retention import prune_all
from dossier.queue.handlers import TaskRun, task_handler
from dossier.queue.service import enqueue_unique

log = logging.getLogger("dossier.operations")

RETENTION_TASK = "operations.retention"
RETENTION_KEY = "operations.retention"
# A run deletes for at most this long, then queues itself again at once: the task moves between workers,
# and a stopping worker is not held by it.
RUN_BUDGET_SECONDS = 60.0
# Seconds before a run that ran out of budget continues (not the whole interval: work is left).
CONTINUE_AFTER = 1.0


async def ensure_retention_task(session: AsyncSession, *, delay: float = 0.0) -> int | None:
    """Queue the retention task unless the cluster has it already (`dossier serve` and `dossier worker`
    call this at start); the new task's id, or None."""
    return await enqueue_unique(
        session, RETENTION_TASK, {}, dedupe_key=RETENTION_KEY, run_at=utcnow() + timedelta(seconds=delay)
    )


@task_handler(RETENTION_TASK, max_attempts=50, backoff=(10.0, 60.0, 300.0, 600.0))
async def retention(run: TaskRun) -> None:
    settings = run.resources.settings
    maker = run.resources.sessionmaker
    result = await prune_all(maker, settings, budget_seconds=RUN_BUDGET_SECONDS)
    if any(result.deleted.values()):
        log.info("retention pruned history", extra={**result.deleted, "batches": result.batches})
    # The next run is queued in the transaction that ends this one: exactly one stays in the queue.
    async with maker() as session, session.begin():
        await run.complete_in(session)
        await ensure_retention_task(
            session, delay=CONTINUE_AFTER if result.unfinished else settings.retention_interval
        )
