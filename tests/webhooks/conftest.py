"""Fixtures of the webhook tests: compressed time, a DNS table, an outbound client, an in-process worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import dossier.webhooks.tasks  # noqa: F401  (registers the dispatcher's task handlers)
from dossier.net import OutboundClient
from dossier.queue.service import WorkerResources
from dossier.queue.worker import Worker
from dossier.settings import Settings

T = TypeVar("T")
# Every retry delay is multiplied by this: the default schedule's 5 s becomes 5 ms.
TIME_SCALE = 0.001


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_time_scale": TIME_SCALE,
            "worker_poll_interval": 0.05,
        }
    )


@pytest.fixture
def dns() -> dict[str, list[str]]:
    """Host name -> addresses the outbound client's resolver answers (tests change it to rebind names)."""
    return {}


@pytest.fixture
async def http(settings: Settings, dns: dict[str, list[str]]) -> AsyncIterator[OutboundClient]:
    async def resolve(host: str) -> Sequence[str]:
        if host not in dns:
            raise OSError(f"{host} is not in the test DNS table")
        return dns[host]

    client = OutboundClient.from_settings(settings, resolve=resolve)
    yield client
    await client.aclose()


@pytest.fixture
def api(app: Any, http: OutboundClient) -> Any:
    """The app, using the test outbound client (and its DNS table) to validate URLs."""
    app.state.http = http
    return app


@pytest.fixture
async def wclient(api: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        yield client


@asynccontextmanager
async def running_worker(
    settings: Settings, maker: async_sessionmaker[AsyncSession], http: OutboundClient, **options: Any
) -> AsyncIterator[Worker]:
    """The queue engineer's Worker, running in this event loop until the block ends."""
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
