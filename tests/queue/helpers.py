"""Helpers of the queue tests: run a worker in-process, wait for conditions with deadlines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.queue.models import Task
from dossier.queue.worker import Worker
from dossier.settings import Settings
from tests.helpers import running_worker as shared_running_worker


@asynccontextmanager
async def running_worker(
    settings: Settings, maker: async_sessionmaker[AsyncSession], **options: Any
) -> AsyncIterator[Worker]:
    """The shared worker runner with the queue tests' defaults (4 at once, claims of 10)."""
    async with shared_running_worker(
        settings, maker, **{"concurrency": 4, "batch_size": 10, **options}
    ) as worker:
        yield worker


async def all_tasks(maker: async_sessionmaker[AsyncSession]) -> list[Task]:
    """Every row of the tasks table but the cluster's periodic retention task (`dossier worker` queues it at
    start, for an hour later)."""
    async with maker() as session:
        return list(
            await session.scalars(select(Task).where(Task.kind != "operations.retention").order_by(Task.id))
        )


async def get_task(maker: async_sessionmaker[AsyncSession], task_id: int) -> Task | None:
    """One task as stored now (None once it succeeded and was deleted)."""
    async with maker() as session:
        return await session.get(Task, task_id)
