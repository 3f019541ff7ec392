"""Queue handler of list building: add a large list to its project a batch at a time, in the background."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.lists import service
from dossier.queue.handlers import TaskRun, task_handler
from dossier.queue.service import enqueue

BUILD = "lists.build"


def queue_build(session: AsyncSession, list_id: str) -> None:
    """Queue the background build of a recorded list (in the caller's transaction)."""
    enqueue(session, BUILD, {"list_id": list_id})


@task_handler(BUILD, max_attempts=10)
async def build(run: TaskRun) -> None:
    """Add one batch, then queue the next one in the same transaction: progress commits batch by batch, and a
    retried task continues where the last commit left off (the build keeps its position)."""
    settings = run.resources.settings
    list_id = str(run.payload["list_id"])
    async with run.resources.sessionmaker() as session, session.begin():
        # This task ends in the transaction of its batch: a worker that dies after the commit leaves no
        # second chain of batches behind. A task another worker took over is left to that worker.
        if not await run.complete_in(session):
            return
        more = await service.continue_build(
            session,
            list_id,
            batch_rows=settings.list_batch_rows,
            max_chars=settings.max_value_chars,
            chunk_rows=settings.tool_chunk_rows,
        )
        if more:
            queue_build(session, list_id)
