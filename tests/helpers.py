"""Helpers every test package shares: run a real queue worker in the test loop, wait with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.queue.handlers import WorkerResources
from dossier.queue.worker import Worker
from dossier.settings import Settings
from dossier.tasks_registry import TASK_MODULES, import_task_modules

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
    settings: Settings, maker: async_sessionmaker[AsyncSession], http: Any = None, **options: Any
) -> AsyncIterator[Worker]:
    """A real Worker (with every built-in task handler) running in this event loop until the block ends,
    then stopped gracefully. ``options`` override the compressed-time defaults below."""
    import_task_modules(TASK_MODULES)
    config: dict[str, Any] = {
        "concurrency": 8,
        "poll_interval": 0.05,
        "lease_seconds": 30.0,
        "heartbeat_interval": 5.0,
        "batch_size": 20,
        "shutdown_grace": 5.0,
    }
    config.update(options)
    worker = Worker(WorkerResources(settings=settings, sessionmaker=maker, http=http), **config)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.ready.wait(), 30)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
