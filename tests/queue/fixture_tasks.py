"""Task handlers for the queue tests, importable by `dossier worker` subprocesses.

Workers load it with ``DOSSIER_TASK_MODULES=tests.queue.fixture_tasks`` and the repository on PYTHONPATH.
Each run records itself (task, worker, attempt, start and end wall-clock times) in ``fixture_runs`` so a
test can check from outside which process ran what, and when.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.queue.handlers import TaskRun, task_handler

RECORD = "fixture.record"

metadata = MetaData()
runs = Table(
    "fixture_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", BigInteger, nullable=False),
    Column("worker_id", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started", Float, nullable=False),
    Column("ended", Float),
)


async def create_runs_table(engine: AsyncEngine) -> None:
    """Create ``fixture_runs`` in the test database (it is not part of Dossier's schema)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


@task_handler(RECORD, max_attempts=3, backoff=(0.05,))
async def record(run: TaskRun) -> None:
    """Record the start (committed at once), sleep ``payload.sleep``, record the end.

    ``payload.hang_on_attempt``: on that attempt, hang instead (to be killed or stopped mid-task).
    """
    maker = run.resources.sessionmaker
    async with maker() as session, session.begin():
        run_id = await session.scalar(
            insert(runs)
            .values(task_id=run.task_id, worker_id=run.worker_id, attempt=run.attempt, started=time.time())
            .returning(runs.c.id)
        )
    if run.payload.get("hang_on_attempt") == run.attempt:
        await asyncio.sleep(3600)
    await asyncio.sleep(float(run.payload.get("sleep", 0)))
    async with maker() as session, session.begin():
        await session.execute(update(runs).where(runs.c.id == run_id).values(ended=time.time()))
