"""Helpers of the queue tests: run a worker in-process, wait for conditions with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.queue.models import Task
from dossier.queue.service import WorkerResources
from dossier.queue.worker import Worker
from dossier.settings import Settings

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or check}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running_worker(
    settings: Settings, maker: async_sessionmaker[AsyncSession], **options: Any
) -> AsyncIterator[Worker]:
    """A worker running in this event loop until the block ends (then stopped gracefully)."""
    config: dict[str, Any] = {
        "concurrency": 4,
        "poll_interval": 0.05,
        "lease_seconds": 30.0,
        "heartbeat_interval": 5.0,
        "batch_size": 10,
        "shutdown_grace": 5.0,
    }
    config.update(options)
    worker = Worker(WorkerResources(settings=settings, sessionmaker=maker, http=None), **config)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.ready.wait(), 30)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def all_tasks(maker: async_sessionmaker[AsyncSession]) -> list[Task]:
    """Every row of the tasks table."""
    async with maker() as session:
        return list(await session.scalars(select(Task).order_by(Task.id)))


async def get_task(maker: async_sessionmaker[AsyncSession], task_id: int) -> Task | None:
    """One task as stored now (None once it succeeded and was deleted)."""
    async with maker() as session:
        return await session.get(Task, task_id)
